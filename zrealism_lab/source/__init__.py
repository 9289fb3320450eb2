"""The input, before any model runs: intake, clips, background analysis, preparation, samples."""
