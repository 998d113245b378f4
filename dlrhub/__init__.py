"""dlrhub: receive, normalize, store and fan out messaging delivery receipts."""

__version__ = "0.1.0"
