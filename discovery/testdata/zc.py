"""python-zeroconf peer for discovery's network-namespace tests.

Run only inside a test's network namespace:
  zc.py browse IP     print "FOUND <instance> <port> <txt id>" for each _syncd._tcp service
  zc.py publish IP    publish a foreign _syncd._tcp service (bad id) and an _http._tcp service
"""
import socket
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

SYNCD = "_syncd._tcp.local."


class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None:
            print("NOINFO", name, flush=True)
            return
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        print("FOUND", name, info.port, txt.get("id", "-"), flush=True)

    def update_service(self, zc, type_, name):
        self.add_service(zc, type_, name)

    def remove_service(self, zc, type_, name):
        pass


def main():
    mode, ip = sys.argv[1], sys.argv[2]
    zc = Zeroconf(interfaces=[ip], ip_version=IPVersion.V4Only)
    try:
        if mode == "browse":
            ServiceBrowser(zc, SYNCD, Listener())
        elif mode == "publish":
            addr = [socket.inet_aton(ip)]
            zc.register_service(ServiceInfo(
                SYNCD, "foreign." + SYNCD, port=9, addresses=addr,
                properties={"id": "not-a-device-id", "v": "1"}, server="foreign.local."))
            zc.register_service(ServiceInfo(
                SYNCD, "noid." + SYNCD, port=9, addresses=addr,
                properties={"v": "1"}, server="foreign.local."))
            zc.register_service(ServiceInfo(
                "_http._tcp.local.", "printer._http._tcp.local.", port=80, addresses=addr,
                properties={"path": "/"}, server="foreign.local."))
            print("PUBLISHED", flush=True)
        else:
            sys.exit("unknown mode " + mode)
        while True:
            time.sleep(1)
    finally:
        zc.close()


if __name__ == "__main__":
    main()
