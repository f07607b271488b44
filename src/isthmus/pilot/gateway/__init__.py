"""What isthmusd sends a gateway pod's Envoy (a `router`): the listeners and routes of the
Gateways that select it, from the VirtualServices bound to them."""
