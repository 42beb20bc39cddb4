#!/usr/bin/env bash
# Remove what scripts/deploy.sh created: the resource group, the identity's role assignments
# elsewhere (on the Azure OpenAI account, when one was given), and the soft-deleted Key Vault.
# Idempotent. See --help.
set -euo pipefail

VAULT_TAG="sora-gateway-secrets"

usage() {
  cat <<'EOF'
Usage: scripts/teardown.sh RESOURCE_GROUP [options]

Deletes the gateway's resource group and everything in it (videos, apps, keys, jobs, telemetry),
the role assignments its identity holds outside it (Cognitive Services OpenAI User on the Azure
OpenAI account, when deploy.sh was given one), and purges its soft-deleted Key Vault so the same
names can be deployed again. The Azure OpenAI account and its deployments are left alone.

Options:
  --yes          do not ask for confirmation
  --no-purge     keep the deleted Key Vault recoverable for its retention period (7 days); a new
                 deployment into a resource group of the same name fails until it is purged
  --no-wait      do not wait for the resource group deletion (implies --no-purge)
  -h, --help     this help
EOF
}

die() {
  printf 'teardown: %s\n' "$*" >&2
  exit 1
}

log() {
  printf '==> %s\n' "$*" >&2
}

assume_yes=false
purge=true
wait_for_delete=true
positional=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --yes)
      assume_yes=true
      shift
      ;;
    --no-purge)
      purge=false
      shift
      ;;
    --no-wait)
      wait_for_delete=false
      purge=false
      shift
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done
[[ ${#positional[@]} -eq 1 ]] || {
  usage >&2
  exit 2
}
resource_group="${positional[0]}"
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
az account show --output none 2>/dev/null || die "not logged in: run 'az login'"

if [[ "$(az group exists --name "$resource_group")" != "true" ]]; then
  log "Resource group $resource_group does not exist: nothing to delete"
  exit 0
fi

if [[ "$assume_yes" != true ]]; then
  [[ -t 0 ]] || die "refusing to delete $resource_group without --yes (no terminal to ask on)"
  read -r -p "Delete resource group $resource_group and everything in it? Type its name to confirm: " answer
  [[ "$answer" == "$resource_group" ]] || die "not confirmed"
fi

# Role assignments of the gateway's identities anywhere in the subscription: the one on an Azure
# OpenAI account (if any, now or in an earlier deployment) lives outside the resource group and
# would otherwise be left orphaned.
principals="$(az identity list --resource-group "$resource_group" --query "[].principalId" --output tsv)"
for principal in $principals; do
  assignments="$(az role assignment list --assignee "$principal" --all --query "[].id" --output tsv)"
  for assignment in $assignments; do
    log "Removing role assignment $assignment"
    az role assignment delete --ids "$assignment" --output none
  done
done

vaults="$(az keyvault list --resource-group "$resource_group" --query "[?tags.\"$VAULT_TAG\"].name" --output tsv)"

log "Deleting resource group $resource_group (several minutes)"
if [[ "$wait_for_delete" == true ]]; then
  az group delete --name "$resource_group" --yes --output none
else
  az group delete --name "$resource_group" --yes --no-wait --output none
fi

if [[ "$purge" == true ]]; then
  for vault in $vaults; do
    log "Purging the deleted Key Vault $vault"
    az keyvault purge --name "$vault" --output none ||
      log "Could not purge $vault (needs the purge permission on the subscription); it expires by itself"
  done
fi
log "Done"
