"""Security translation: PeerAuthentication modes, mTLS transport sockets, SDS references."""
