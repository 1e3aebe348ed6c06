"""sftviz: see what supervised fine-tuning (TRL's SFTTrainer) trains on, token by token."""

TRL_VERSION = "1.16.0"  # the TRL release whose behaviour sftviz mirrors
