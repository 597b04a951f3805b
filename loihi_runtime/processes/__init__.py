"""Lava processes neurovae adds: only the verification tap `SpikeRecorder` (kept alone in
this folder: Lava's compiler executes every module beside a Process to find its models).
The deployed graph is built from Lava's stock processes alone."""
