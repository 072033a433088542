"""The graded exercises: ``base`` (reducing outputs, comparing them, ``Exercise``) and one module per
topic, each with an ``EXERCISES`` tuple: ``canvas`` (placing digits, boxes, one-hot, ordering),
``metrics`` (IoU, average precision, matching detections), ``heads`` (the one dense head, ``build_head``, and
the four head exercises it replaced), ``classic`` (the seed's classic model), ``target_parts``
(heatmap and box targets), ``decoder_parts`` (decoding boxes, peaks, NMS), ``losses`` (the masked box, focal and IoU losses), ``crowds``
(choosing NMS's threshold, and the retired ``scale_sigmas``) and ``assembly`` (lesson 5's capstone: bump widths,
the detector's targets and its decoder, on the student's own parts). ``mnistloc.grading.registry`` gathers them
by name."""
