"""Head models in FLAME's format: the FLAME module, its file checks, landmarks, and the procedural head."""
