"""The DIV2K training set's RGB mean, which EDSR-family models subtract from 3-channel inputs (MambaIR, RNAN)."""

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
