"""Capture sources (files, live interfaces, tshark) and the frame decoder."""
