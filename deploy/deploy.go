// Package deploy holds the deployment's configuration files (compose.yaml
// mounts them), embedded so that tests and the benchmark run exactly what a
// deployment runs.
package deploy

import _ "embed"

// NginxConf is nginx.conf: the load balancer and edge cache in front of the
// API nodes, as it goes into nginx's http block.
//
//go:embed nginx.conf
var NginxConf string
