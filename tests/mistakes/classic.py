"""The classic model of lesson 1, got wrong the way a student would (slow: each builds several models)."""
from mnistloc.checks import keras


def _classic(case, size, filters, units, *, padding="valid", pool_first=False, slot_axis=-1):
    L = keras.layers
    image = keras.Input(shape=(size, size))
    x = L.Rescaling(1 / 255)(L.Reshape((size, size, 1))(image))
    for f in filters:
        if pool_first:
            x = L.AveragePooling2D(2)(x)
        x = L.Conv2D(f, 3, activation="relu", padding=padding)(x)
        if not pool_first:
            x = L.AveragePooling2D(2)(x)
    x = L.Dense(units, activation="relu")(L.Flatten()(x))
    heads = {"presence": lambda: L.Dense(1, activation="sigmoid", name="presence")(x),
             "box": lambda: L.Dense(4, activation="sigmoid", name="box")(x),
             "class": lambda: L.Dense(10, activation="softmax", name="class")(x),
             "count": lambda: L.Dense(3, activation="softmax", name="count")(x),
             "boxes": lambda: L.Reshape((2, 4), name="boxes")(L.Dense(8, activation="sigmoid")(x)),
             "classes": lambda: L.Softmax(axis=slot_axis, name="classes")(L.Reshape((2, 10))(L.Dense(20)(x)))}
    names = {1: ("presence", "box"), 2: ("presence", "box"), 3: ("class", "box"), 4: ("count", "boxes", "classes")}
    return keras.Model(image, {n: heads[n]() for n in names[case]})


def classic_same_padding(case, *, size=128, filters=(16, 32, 64), units=128):
    return _classic(case, size, filters, units, padding="same")


def classic_pool_first(case, *, size=128, filters=(16, 32, 64), units=128):
    return _classic(case, size, filters, units, pool_first=True)


def classic_softmax_over_slots(case, *, size=128, filters=(16, 32, 64), units=128):
    return _classic(case, size, filters, units, slot_axis=1)


MISTAKES = [
    ("classic_model", classic_same_padding, ("padding",)),
    ("classic_model", classic_pool_first, ("spatial size", "padding", "pool")),
    ("classic_model", classic_softmax_over_slots, ("over the 2 slots", "over the slots")),
]
