// SPDX-License-Identifier: Apache-2.0
// libkeepalive_impostor.so: a library named like ours that is not ours, as
// upstream's libkeepalive.so or Debian's libkeepalive0 are when preloaded
// beside ours. It does nothing.
int keepalive_impostor_loaded = 1;
