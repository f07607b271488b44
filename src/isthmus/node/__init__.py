"""isthmus.node: the node runtime process (`isthmus node`): pods on this machine, apart from
isthmusd, talking to it only through its API; and the mesh's ownership claim."""
