"""The FAQ bot and the text normalization it (and search) matches Persian and English with."""
