"""Channel adapters: turn what a provider sends into one inbound envelope, and send replies back."""
