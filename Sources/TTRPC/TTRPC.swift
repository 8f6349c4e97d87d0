// TTRPC: framing, client and server.
