"""Wire formats encoded and decoded as bytes: Ethernet II, 802.1Q, ARP, IPv4, ICMP, UDP, TCP, pcap."""
