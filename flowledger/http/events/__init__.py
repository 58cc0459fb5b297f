"""Events over HTTP: the live Server-Sent Events stream, and the AsyncAPI document."""
