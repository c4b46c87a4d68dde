// The cert-manager controller for tests: cert-manager's own control loops (the packages of
// github.com/cert-manager/cert-manager at the pinned release, registered by their init()), wired the
// way its cmd/controller does it, minus leader election, the webhook, metrics and ACME. Its own
// main module (github.com/cert-manager/cert-manager/cmd/controller) is not served by the Go module
// proxy, so test/certmanager/build.sh builds this instead. Only the loops a CA issuer needs run.
//
//	controller --kubeconfig FILE [--namespace NS] [--cluster-resource-namespace NS] [--controllers a,b]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr/funcr"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Control loops (each registers itself with controllerpkg in init()).
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// Issuer kinds the issuers controllers can set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "", "only this namespace (all when empty)")
	crNamespace := flag.String("cluster-resource-namespace", "cert-manager", "where ClusterIssuers' Secrets live")
	enabled := flag.String("controllers", "", "comma-separated control loops (all registered ones when empty)")
	verbose := flag.Int("v", 1, "log verbosity")
	flag.Parse()

	write := func(prefix, args string) {
		fmt.Fprintln(os.Stderr, time.Now().UTC().Format(time.RFC3339Nano), prefix, args)
	}
	log := funcr.New(write, funcr.Options{Verbosity: *verbose})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, log, "controller")

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		Namespace:          *namespace,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: *crNamespace},
		CertificateOptions: controllerpkg.CertificateOptions{
			// cert-manager's defaults (its flags'): a failed request is retried after 1 h, at most 32 h.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		log.Error(err, "building the controller context")
		os.Exit(1)
	}
	known := controllerpkg.Known()
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	if *enabled != "" {
		names = strings.Split(*enabled, ",")
	}
	var wg sync.WaitGroup
	for _, n := range names {
		fn, ok := known[n]
		if !ok {
			log.Error(nil, "unknown controller", "controller", n, "known", fmt.Sprint(sortedKeys(known)))
			os.Exit(2)
		}
		iface, err := fn(factory)
		if err != nil {
			log.Error(err, "constructing controller", "controller", n)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("starting controller", "controller", n)
			if err := iface.Run(5, ctx); err != nil {
				log.Error(err, "controller failed", "controller", n)
				os.Exit(1)
			}
		}()
	}
	// The informers the loops asked for, shared by all of them: started once every loop is built.
	shared, err := factory.Build()
	if err != nil {
		log.Error(err, "building the informer context")
		os.Exit(1)
	}
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	log.Info("cert-manager controller running", "controllers", strings.Join(names, ","))
	wg.Wait()
}

func sortedKeys(m map[string]controllerpkg.Constructor) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
