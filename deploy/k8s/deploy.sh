#!/usr/bin/env bash
# Deploys one overlay with a given image to the current AWS account's EKS cluster:
#
#   deploy/k8s/deploy.sh staging|production CLUSTER ghcr.io/OWNER/brigade@sha256:…
#   deploy/k8s/deploy.sh --render staging|production ghcr.io/OWNER/brigade@sha256:…   (print only)
#
# Order: migration Job first (a failing migration stops here, before any pod is replaced),
# then every resource, then waits for the rollout; a rollout that does not become ready is
# undone (kubectl rollout undo) and the script fails.
set -euo pipefail
cd "$(dirname "$0")"

render_only=false
if [ "${1:-}" = "--render" ]; then
    render_only=true
    environment=$2 cluster="" image=$3
else
    environment=$1 cluster=$2 image=$3
fi
namespace="brigade-$environment"
case "$environment" in staging|production) ;; *) echo "deploy.sh: unknown environment $environment" >&2; exit 2;; esac
case "$image" in *@sha256:*) ;; *) echo "deploy.sh: pass the image by digest (NAME@sha256:…)" >&2; exit 2;; esac

# The overlay with the image pinned by digest. kustomize takes only relative paths to other
# kustomizations, hence the path from the temporary folder to the overlay.
render() {
    local dir
    dir=$(mktemp -d)
    cat > "$dir/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$dir" "$PWD/overlays/$environment")
images:
  - name: ghcr.io/brigade-rs/brigade
    newName: ${image%@*}
    digest: ${image#*@}
YAML
    kubectl kustomize "$dir"
    rm -rf "$dir"
}

if [ "$render_only" = true ]; then
    render
    exit 0
fi

aws eks update-kubeconfig --name "$cluster" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
render > "$work/rendered.yaml"

kubectl -n "$namespace" delete job brigade-migrate --ignore-not-found --wait=true
kubectl apply -f "$work/rendered.yaml" --selector app.kubernetes.io/component=migrate
kubectl -n "$namespace" wait --for=condition=complete job/brigade-migrate --timeout=600s

kubectl apply -f "$work/rendered.yaml"
if ! kubectl -n "$namespace" rollout status deployment/brigade --timeout=600s; then
    echo "deploy.sh: rollout did not become ready; rolling back" >&2
    kubectl -n "$namespace" rollout undo deployment/brigade
    kubectl -n "$namespace" rollout status deployment/brigade --timeout=600s
    exit 1
fi
