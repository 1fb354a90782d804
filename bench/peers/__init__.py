"""Peer CAs measured on the same machine and in the same run as our own benchmark."""
