"""sftviz: see what supervised fine-tuning (TRL's SFTTrainer) trains on, token by token."""

TRL_VERSION = "1.16.0"  # the TRL release whose behaviour sftviz mirrors


def one_line(error):
    """An exception as the one-line message the CLI and the page show (never a traceback)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
