"""The wire contract (DESIGN §1), pure: credentials, record encoding, batch encoding,
packing lines into message bodies. Nothing here does I/O."""
