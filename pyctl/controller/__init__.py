"""The controller: derives every node's configuration from intents and keeps it applied."""
