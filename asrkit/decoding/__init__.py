"""The decode stage (stage 8): decode.py decodes a cut set with a search of :mod:`asrkit.search`; lm_weights.py
chooses shallow fusion's weights on dev."""
