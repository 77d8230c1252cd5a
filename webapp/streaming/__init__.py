"""Live streaming: self-hosted broadcasts through nginx-rtmp (publish keys, the callbacks,
HLS behind the app's login), the player and its heartbeats, live status and recordings."""
