"""dlrhub: receive, normalize, store and fan out messaging delivery receipts."""

__version__ = "0.1.0"

from dlrhub.sinks.signing import verify_webhook as verify_webhook
