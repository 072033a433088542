"""The graded exercises: ``base`` (reducing outputs, comparing them, ``Exercise``) and one module per
topic, each with an ``EXERCISES`` tuple: ``canvas`` (placing digits, boxes, one-hot, ordering),
``metrics`` (IoU, average precision) and ``heads`` (the Keras heads and the masked box loss).
``mnistloc.grading.registry`` gathers them by name."""
