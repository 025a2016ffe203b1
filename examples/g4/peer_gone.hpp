// Whether the client of a request that is still being answered has closed its connection. cpp-httplib 0.11 (Debian
// 12) gives a handler no socket, and 0.18's Request::is_connection_closed is never set (always true), so the
// socket is found by the connection's addresses among this process's descriptors, once per request (a
// getsockname and getpeername per open descriptor), and then polled like llama-server's httplib does: readable
// with nothing to read (end of stream) or an error means gone; a client that only half-closes after its request
// reads as gone too, as it does to llama-server. Linux (and other systems with /proc/self/fd).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <httplib.h>

namespace g4cli {

class PeerGone {
 public:
  explicit PeerGone(const httplib::Request& req) : fd_(FindSocket(req)) {}

  // True once the peer closed or reset the connection; false while it is open (or its socket was not found).
  bool operator()() const {
    if (fd_ < 0) return false;
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }

 private:
  // An address and port as httplib writes them into Request::remote_addr / local_addr and the ports.
  static bool Same(const sockaddr_storage& a, const std::string& ip, int port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
      return ntohs(v4.sin_port) == port && inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text) && ip == text;
    }
    if (a.ss_family == AF_INET6) {
      const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
      return ntohs(v6.sin6_port) == port && inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text) && ip == text;
    }
    return false;
  }

  static int FindSocket(const httplib::Request& req) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
      const int fd = std::atoi(entry.path().filename().c_str());
      sockaddr_storage local{}, peer{};
      socklen_t n_local = sizeof local, n_peer = sizeof peer;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n_local) != 0) continue;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &n_peer) != 0) continue;
      if (Same(peer, req.remote_addr, req.remote_port) && Same(local, req.local_addr, req.local_port)) return fd;
    }
    return -1;
  }

  int fd_;
};

}  // namespace g4cli
