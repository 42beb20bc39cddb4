"""Video providers behind one port (`gateway.providers.port`), one adapter module each."""
