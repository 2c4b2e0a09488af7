#!/usr/bin/python3
"""A loopback RTSP camera for the daemon tests: serves an H.264 MP4 at rtsp://127.0.0.1:PORT/cam.

Usage: /usr/bin/python3 scripts/rtsp_server.py FILE.mp4 PORT
Needs Debian's python3-gst-1.0, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{good,bad}
(scripts/setup.sh installs them). Each client gets its own session playing the file from the
start, in real time; the process prints "ready" once it listens and runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

path, port = sys.argv[1], sys.argv[2]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( filesrc location="{path}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
factory.set_shared(False)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
