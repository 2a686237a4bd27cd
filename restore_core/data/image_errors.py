"""The error every image reader raises for a file it cannot use."""


class ImageFormatError(ValueError):
    """An image file that cannot be used: not an image, wrong channel count, too small."""
