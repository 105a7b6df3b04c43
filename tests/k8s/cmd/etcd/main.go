// Command etcd runs a single-member etcd (go.etcd.io/etcd/server/v3/embed) on loopback for the
// project's test bed. It exits when etcd stops or on SIGTERM/SIGINT.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func parseURL(flagName, value string) url.URL {
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		fmt.Fprintf(os.Stderr, "etcd: --%s %q is not a URL like http://127.0.0.1:2379\n", flagName, value)
		os.Exit(2)
	}
	return *u
}

func main() {
	dataDir := flag.String("data-dir", "", "directory for etcd's data (required)")
	client := flag.String("listen-client-url", "http://127.0.0.1:2379", "URL to serve clients on (loopback only)")
	peer := flag.String("listen-peer-url", "http://127.0.0.1:2380", "URL for the (single) member's peer port")
	flag.Parse()
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		os.Exit(2)
	}

	cfg := embed.NewConfig()
	cfg.Name = "testbed"
	cfg.Dir = *dataDir
	cu := parseURL("listen-client-url", *client)
	pu := parseURL("listen-peer-url", *peer)
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: start: %v\n", err)
		os.Exit(1)
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Printf("etcd: ready, serving clients on %s\n", cu.String())
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60 s")
		os.Exit(1)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Printf("etcd: %v, stopping\n", s)
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		os.Exit(1)
	}
}
