# SPDX-License-Identifier: Apache-2.0
# Install rules beyond the targets' own (man pages, the static supervisor,
# documentation and examples) and the Debian package: `cpack -G DEB` in the
# build directory. Included from the top-level CMakeLists.txt.
#
# Layout with CMAKE_INSTALL_PREFIX=/usr on Debian (GNUInstallDirs):
#   /usr/bin/keepalive-supervise                        (supervisor/)
#   /usr/lib/x86_64-linux-gnu/libkeepalive{,_listen,_socket}.so  (preload/)
#   /usr/libexec/keepalive/keepalive-supervise-static   (to copy into images)
#   /usr/share/man/man1/keepalive-supervise.1.gz
#   /usr/share/man/man7/libkeepalive.7.gz
#   /usr/bin/keepalive-agent, /usr/share/man/man8/keepalive-agent.8.gz
#   /usr/lib/systemd/system/keepalive-agent.{service,socket}
#   /usr/share/doc/keepalive/examples/...
# The preload libraries sit in a directory the dynamic loader searches, so
# that `LD_PRELOAD=libkeepalive.so CMD` works by bare name.

set(KEEPALIVE_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

option(KEEPALIVE_INSTALL_STATIC
  "Install keepalive-supervise-static under ${CMAKE_INSTALL_LIBEXECDIR}/keepalive"
  ON)

# Man pages: the version filled in at configure time, gzipped (as Debian
# policy wants) at build time.
find_program(KEEPALIVE_GZIP gzip REQUIRED)
set(KEEPALIVE_MAN_DIR ${PROJECT_BINARY_DIR}/packaging/man)
set(_keepalive_man_outputs)
foreach(page IN ITEMS keepalive-supervise.1 libkeepalive.7 keepalive-agent.8)
  configure_file(${KEEPALIVE_PACKAGING_DIR}/man/${page}
    ${KEEPALIVE_MAN_DIR}/${page} @ONLY)
  add_custom_command(
    OUTPUT ${KEEPALIVE_MAN_DIR}/${page}.gz
    COMMAND ${KEEPALIVE_GZIP} -9 -n -f -k ${KEEPALIVE_MAN_DIR}/${page}
    DEPENDS ${KEEPALIVE_MAN_DIR}/${page}
    COMMENT "Compressing man page ${page}"
    VERBATIM)
  list(APPEND _keepalive_man_outputs ${KEEPALIVE_MAN_DIR}/${page}.gz)
  string(REGEX MATCH "[0-9]+$" section ${page})
  install(FILES ${KEEPALIVE_MAN_DIR}/${page}.gz
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(keepalive_man_pages ALL DEPENDS ${_keepalive_man_outputs})

# The static supervisor is a file to copy into container images, not a
# command for PATH (the dynamic one is): it goes where helper programs go.
if(KEEPALIVE_INSTALL_STATIC AND TARGET keepalive-supervise-static)
  install(TARGETS keepalive-supervise-static
    RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/keepalive)
endif()

# The agent's units; enabled by the administrator (systemctl enable --now
# keepalive-agent.socket), never by the package.
install(FILES ${KEEPALIVE_PACKAGING_DIR}/systemd/keepalive-agent.service
  ${KEEPALIVE_PACKAGING_DIR}/systemd/keepalive-agent.socket
  DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)

install(DIRECTORY ${KEEPALIVE_PACKAGING_DIR}/examples/
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# Debian policy 12.5: the copyright file, machine-readable, beside the
# documentation; the LICENSE itself for other installs.
install(FILES ${KEEPALIVE_PACKAGING_DIR}/deb/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
if(EXISTS ${PROJECT_SOURCE_DIR}/README.md)
  install(FILES ${PROJECT_SOURCE_DIR}/README.md
    DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

# Where this configuration installs, for tests/packaging/install_test.sh.
set(_keepalive_dirs "")
foreach(dir IN ITEMS BINDIR LIBDIR LIBEXECDIR MANDIR DOCDIR)
  string(APPEND _keepalive_dirs "${dir}=${CMAKE_INSTALL_FULL_${dir}}\n")
endforeach()
if(KEEPALIVE_INSTALL_STATIC AND TARGET keepalive-supervise-static)
  string(APPEND _keepalive_dirs "STATIC=1\n")
endif()
file(WRITE ${PROJECT_BINARY_DIR}/packaging/install-dirs.txt "${_keepalive_dirs}")

# A plain `cmake --install` into a system prefix refreshes the loader's
# cache, so that the bare library names resolve at once. Skipped when
# staging (DESTDIR, or CPack's own install into its staging tree).
install(CODE [[
  if("$ENV{DESTDIR}" STREQUAL "" AND
     CMAKE_INSTALL_PREFIX MATCHES "^/usr(/local)?/?$")
    execute_process(COMMAND ldconfig RESULT_VARIABLE _ldconfig_result
      ERROR_QUIET)
    if(NOT _ldconfig_result EQUAL 0)
      message(STATUS "ldconfig failed; run it as root so that "
        "LD_PRELOAD=libkeepalive.so finds the installed library")
    endif()
  endif()
]])

# --- The Debian package ------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME keepalive)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGE_CONTACT
  "keepalive maintainers <maintainers@users.noreply.r-seed-f26d7a85.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "TCP keepalive and TCP_USER_TIMEOUT for unmodified programs")
set(CPACK_PACKAGE_DESCRIPTION
  "Turns on TCP keepalive and TCP_USER_TIMEOUT on the TCP sockets of
programs that do not, so that connections to vanished peers are noticed.
Two ways: preload libraries for dynamically linked programs
(LD_PRELOAD=libkeepalive.so, libkeepalive_listen.so,
libkeepalive_socket.so), and keepalive-supervise, a seccomp user-notify
supervisor that covers static binaries, Go programs and every descendant,
and works as a container entrypoint (PID 1). A statically linked
keepalive-supervise is included to copy into container images.
keepalive-agent serves every container of a node whose seccomp profile
names its socket (runc, crun, containerd, Kubernetes Localhost profiles),
and keeps serving them across its own restarts.")
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# libc6 (the C++ runtime and libseccomp are linked in, Boost is headers
# only), with its version, from what the binaries actually link
# (dpkg-shlibdeps, from dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Debian's libkeepalive0 ships /usr/lib/libkeepalive.so (soname
# libkeepalive.so.0), which hooks socket() only. With both installed,
# `LD_PRELOAD=libkeepalive.so` would resolve to ours (the loader's cache
# lists ours under that name) and silently change what its users get: hence
# Conflicts. Replaces only where a file would be overwritten, i.e. when the
# libraries go to /usr/lib itself rather than the multiarch directory.
set(CPACK_DEBIAN_PACKAGE_CONFLICTS libkeepalive0)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(_keepalive_deb_libdir "${CMAKE_INSTALL_LIBDIR}")
else()
  set(_keepalive_deb_libdir "/usr/${CMAKE_INSTALL_LIBDIR}")
endif()
if(_keepalive_deb_libdir STREQUAL "/usr/lib")
  set(CPACK_DEBIAN_PACKAGE_REPLACES libkeepalive0)
endif()
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  # GNUInstallDirs picks the multiarch library directory only for /usr.
  message(STATUS "keepalive: the .deb would put the preload libraries in "
    "${_keepalive_deb_libdir}; configure with -DCMAKE_INSTALL_PREFIX=/usr "
    "for Debian's multiarch layout")
endif()
# Shared libraries in the loader's path: refresh its cache through libc-bin's
# ldconfig trigger (CPack also adds an ldconfig call to postinst/postrm).
set(_keepalive_deb_control ${PROJECT_BINARY_DIR}/packaging/deb)
file(WRITE ${_keepalive_deb_control}/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${_keepalive_deb_control}/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
