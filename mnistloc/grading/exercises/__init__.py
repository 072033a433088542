"""The graded exercises: ``base`` (reducing outputs, comparing them, ``Exercise``) and one module per
topic, each with an ``EXERCISES`` tuple: ``canvas`` (placing digits, boxes, one-hot, ordering),
``metrics`` (IoU, average precision, matching detections), ``heads`` (the Keras heads), ``classic``
(the seed's classic model), ``detector`` (heatmap and box targets, decoding boxes, peaks, NMS),
``losses`` (the masked box, focal and IoU losses) and ``crowds`` (scale-aware heatmap widths, choosing
NMS's threshold). ``mnistloc.grading.registry`` gathers them by name."""
