"""The router: dedupe, identity, conversation, assignment — one transaction per message."""
