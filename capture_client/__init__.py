"""Capture client: streams a webcam and a microphone (or recorded files) to the emotion fusion service."""
