"""The classic model of lesson 1 (case 1: presence and box), got wrong the way a student would (slow: each
builds several models)."""
from mnistloc.checks import keras


def _classic(size, filters, units, *, padding="valid", pool_first=False, flatten=True):
    L = keras.layers
    image = keras.Input(shape=(size, size))
    x = L.Rescaling(1 / 255)(L.Reshape((size, size, 1))(image))
    for f in filters:
        if pool_first:
            x = L.AveragePooling2D(2)(x)
        x = L.Conv2D(f, 3, activation="relu", padding=padding)(x)
        if not pool_first:
            x = L.AveragePooling2D(2)(x)
    x = L.Dense(units, activation="relu")(L.Flatten()(x) if flatten else x)
    return keras.Model(image, {"presence": L.Dense(1, activation="sigmoid", name="presence")(x),
                               "box": L.Dense(4, activation="sigmoid", name="box")(x)})


def classic_same_padding(*, size=128, filters=(16, 32, 64), units=128):
    return _classic(size, filters, units, padding="same")


def classic_pool_first(*, size=128, filters=(16, 32, 64), units=128):
    return _classic(size, filters, units, pool_first=True)


def classic_no_flatten(*, size=128, filters=(16, 32, 64), units=128):  # Dense layers on the feature map
    return _classic(size, filters, units, flatten=False)


MISTAKES = [
    ("classic_model", classic_same_padding, ("padding",)),
    ("classic_model", classic_pool_first, ("spatial size", "padding", "pool")),
    ("classic_model", classic_no_flatten, ("Flatten", "output shapes", "shape")),
]
