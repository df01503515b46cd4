"""Signal processing shared by serving and training, so the two can never drift apart."""
