"""Provider API clients (send, status) and the status polling daemon."""
