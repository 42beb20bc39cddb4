#!/usr/bin/env bash
# Deploy the Sora gateway to Azure: the infrastructure in infra/main.bicep, then the code.
# Idempotent: run it again to apply template or code changes. See --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/infra/main.bicep"
DEPLOYMENT_NAME="sora-gateway"
SECRET_NAME="admin-api-key"
VAULT_TAG="sora-gateway-secrets"
PROVIDERS=(Microsoft.Web Microsoft.Storage Microsoft.Insights Microsoft.OperationalInsights
  Microsoft.KeyVault Microsoft.ManagedIdentity Microsoft.CognitiveServices)
# Provider API keys: the app setting PROVIDERS' key_setting names (and the environment variable or
# --provider-keys line it is read from), the template's @secure() parameter, its Key Vault secret.
PROVIDER_KEY_SETTINGS=(AIMLAPI_API_KEY GEMINIGEN_API_KEY OPENAI_COMPATIBLE_API_KEY)
PROVIDER_KEY_PARAMETERS=(aimlapiApiKey geminigenApiKey openaiCompatibleApiKey)
PROVIDER_KEY_SECRETS=(aimlapi-api-key geminigen-api-key openai-compatible-api-key)
# Template parameters that hold secrets: never taken from the command line.
SECURE_PARAMETERS=(adminApiKey "${PROVIDER_KEY_PARAMETERS[@]}")

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh RESOURCE_GROUP LOCATION OPENAI [options]

Creates (or updates) the resource group, deploys infra/main.bicep into it, publishes the code with
a remote build, and prints the base URL and how to create the first app.

  RESOURCE_GROUP   resource group to deploy into (created if missing)
  LOCATION         Azure region with Flex Consumption, e.g. eastus2, swedencentral
  OPENAI           the existing Azure OpenAI account with the Sora deployments: its resource id,
                   or its name (looked up in the current subscription)

Options:
  --openai-resource-group RG   resource group of OPENAI when given by name (speeds up the lookup)
  --provider-keys FILE         provider API keys, one NAME=VALUE a line (# comments allowed), NAME one
                               of AIMLAPI_API_KEY, GEMINIGEN_API_KEY, OPENAI_COMPATIBLE_API_KEY; the
                               same variables in the environment are read too (the file wins). Each
                               key goes to Key Vault; a key stored by an earlier run is kept. Keys are
                               never taken from the command line (--param refuses them).
  --providers FILE             PROVIDERS: JSON object of provider accounts (docs/providers.md); give
                               it on every run, like --param
  --catalog FILE               MODEL_CATALOG: JSON list of models (docs/providers.md); give it on
                               every run, like --param
  --param NAME=VALUE           template parameter, repeatable; e.g.
                                 --param 'soraDeployments={"sora-2":"my-sora-deployment"}'
                                 --param allowedModels=sora-2 --param upstreamCreatesPerMinute=4
                                 --param useDurableTaskScheduler=true --param alwaysReadyHttpInstances=1
  --publisher auto|az|func     how to publish the code (auto: func when installed, else az)
  --skip-code                  deploy the infrastructure only
  --what-if                    show what the template would change, and stop
  --rotate-admin-key           store a new management API key (the old one stops working)
  --show-admin-key             print the management API key at the end (needs read access to the vault)
  --no-operator-access         do not grant the signed-in identity read access to the management key
  -h, --help                   this help

Needs: az (logged in with `az login`, Owner or Contributor + Role Based Access Control
Administrator on the resource group and on the OpenAI account), python3.
EOF
}

die() {
  printf 'deploy: %s\n' "$*" >&2
  exit 1
}

log() {
  printf '==> %s\n' "$*" >&2
}

resource_group=""
location=""
provider_keys_file=""
providers_file=""
catalog_file=""
openai=""
openai_resource_group=""
publisher="auto"
skip_code=false
what_if=false
rotate_key=false
show_key=false
operator_access=true
params=()
positional=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --openai-resource-group)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      openai_resource_group="$2"
      shift 2
      ;;
    --param)
      [[ $# -ge 2 && "$2" == *=* ]] || die "$1 needs NAME=VALUE"
      for secure in "${SECURE_PARAMETERS[@]}"; do
        [[ "${2%%=*}" != "$secure" ]] ||
          die "$secure is a secret: never on the command line (use --provider-keys FILE or the environment)"
      done
      params+=("$2")
      shift 2
      ;;
    --provider-keys)
      [[ $# -ge 2 ]] || die "$1 needs a file"
      provider_keys_file="$2"
      shift 2
      ;;
    --providers)
      [[ $# -ge 2 ]] || die "$1 needs a file"
      providers_file="$2"
      shift 2
      ;;
    --catalog)
      [[ $# -ge 2 ]] || die "$1 needs a file"
      catalog_file="$2"
      shift 2
      ;;
    --publisher)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      publisher="$2"
      shift 2
      ;;
    --skip-code)
      skip_code=true
      shift
      ;;
    --what-if)
      what_if=true
      shift
      ;;
    --rotate-admin-key)
      rotate_key=true
      shift
      ;;
    --show-admin-key)
      show_key=true
      shift
      ;;
    --no-operator-access)
      operator_access=false
      shift
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done

[[ ${#positional[@]} -eq 3 ]] || {
  usage >&2
  exit 2
}
resource_group="${positional[0]}"
location="${positional[1]}"
openai="${positional[2]}"
case "$publisher" in
  auto | az | func) ;;
  *) die "--publisher must be auto, az or func" ;;
esac
[[ -f "$TEMPLATE" ]] || die "template not found: $TEMPLATE"

# A JSON string literal of $1 (printf is a builtin: the value is on no process's command line).
json_string() {
  local value="$1"
  value="${value//\\/\\\\}"
  value="${value//\"/\\\"}"
  value="${value//$'\t'/\\t}"
  value="${value//$'\r'/\\r}"
  value="${value//$'\n'/\\n}"
  printf '"%s"' "$value"
}

# --- Provider keys: from the environment, then --provider-keys FILE; never echoed ------------------
provider_key_values=()
for i in "${!PROVIDER_KEY_SETTINGS[@]}"; do
  name="${PROVIDER_KEY_SETTINGS[$i]}"
  provider_key_values[i]="${!name:-}"
  # Read: no child process (az, python3, func) inherits it.
  unset "$name"
done
if [[ -n "$provider_keys_file" ]]; then
  [[ -f "$provider_keys_file" && -r "$provider_keys_file" ]] || die "cannot read $provider_keys_file"
  line_number=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line_number=$((line_number + 1))
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    name="${line%%=*}"
    name="${name#"${name%%[![:space:]]*}"}"
    name="${name#export }"
    name="${name%"${name##*[![:space:]]}"}"
    # The line is never shown: it may hold a key. Only a NAME that looks like one is.
    [[ "$line" == *=* && "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
      die "$provider_keys_file, line $line_number: not NAME=VALUE"
    value="${line#*=}"
    if [[ ${#value} -ge 2 && ("$value" == \"*\" || "$value" == \'*\') ]]; then
      value="${value:1:${#value}-2}"
    fi
    found=false
    for i in "${!PROVIDER_KEY_SETTINGS[@]}"; do
      if [[ "$name" == "${PROVIDER_KEY_SETTINGS[$i]}" ]]; then
        provider_key_values[i]="$value"
        found=true
      fi
    done
    [[ "$found" == true ]] ||
      die "$provider_keys_file, line $line_number: unknown key $name (expected one of ${PROVIDER_KEY_SETTINGS[*]})"
  done <"$provider_keys_file"
  unset line value
fi

# --- PROVIDERS and MODEL_CATALOG: JSON files, checked before anything is deployed -----------------
json_setting() { # FILE KIND(list|object): the file's JSON, refused unless it is a non-empty KIND
  [[ -f "$1" && -r "$1" ]] || die "cannot read $1"
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to check $1"
  python3 -c '
import json, sys
kind = {"list": list, "object": dict}[sys.argv[2]]
try:
    with open(sys.argv[1], encoding="utf-8") as file:
        value = json.load(file)
except (OSError, ValueError) as error:
    sys.exit(f"deploy: {sys.argv[1]} is not JSON: {error}")
if not isinstance(value, kind) or not value:
    sys.exit(f"deploy: {sys.argv[1]} must hold a non-empty JSON {sys.argv[2]}")
' "$1" "$2"
}
providers_json=""
if [[ -n "$providers_file" ]]; then
  json_setting "$providers_file" object || exit 1
  providers_json="$(<"$providers_file")"
fi
catalog_json=""
if [[ -n "$catalog_file" ]]; then
  json_setting "$catalog_file" list || exit 1
  catalog_json="$(<"$catalog_file")"
fi
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
az account show --output none 2>/dev/null || die "not logged in: run 'az login' (and 'az account set -s <subscription>')"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# --- The Azure OpenAI account: a resource id, or a name to look up -------------------------------
if [[ "$openai" == /subscriptions/* ]]; then
  openai_id="$openai"
elif [[ -n "$openai_resource_group" ]]; then
  openai_id="$(az cognitiveservices account show --name "$openai" --resource-group "$openai_resource_group" --query id --output tsv)"
else
  [[ "$openai" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "not an account name or resource id: $openai"
  openai_id="$(az cognitiveservices account list --query "[?name=='$openai'].id | [0]" --output tsv)"
fi
[[ -n "$openai_id" ]] || die "Azure OpenAI account '$openai' not found in this subscription (give its resource id)"
IFS='/' read -r -a id_parts <<<"$openai_id"
# /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>
provider="$(printf '%s/%s' "${id_parts[6]:-}" "${id_parts[7]:-}" | tr '[:upper:]' '[:lower:]')"
[[ ${#id_parts[@]} -eq 9 && "$provider" == "microsoft.cognitiveservices/accounts" ]] ||
  die "not an Azure OpenAI account id: $openai_id"
openai_subscription="${id_parts[2]}"
openai_resource_group="${id_parts[4]}"
openai_name="${id_parts[8]}"
log "Azure OpenAI account: $openai_name (resource group $openai_resource_group)"

# --- Resource group and providers (both idempotent) ----------------------------------------------
log "Resource group $resource_group in $location"
az group create --name "$resource_group" --location "$location" --output none
for namespace in "${PROVIDERS[@]}"; do
  az provider register --namespace "$namespace" --output none
done
for param in ${params[@]+"${params[@]}"}; do
  if [[ "$param" == "useDurableTaskScheduler=true" ]]; then
    az provider register --namespace Microsoft.DurableTask --output none
  fi
done

# --- The management API key: generated once, kept in Key Vault, never on a command line ----------
vault_id="$(az keyvault list --resource-group "$resource_group" \
  --query "[?tags.\"$VAULT_TAG\"=='$SECRET_NAME'].id | [0]" --output tsv)"
secret_exists=false
if [[ -n "$vault_id" ]] && az resource show --ids "$vault_id/secrets/$SECRET_NAME" --output none 2>/dev/null; then
  secret_exists=true
fi
parameters_file="$work/parameters.json"
# Parameters handed over in that private file (mode 600, removed on exit), never on a command line.
file_parameters=()
if [[ "$secret_exists" == false || "$rotate_key" == true ]]; then
  # 36 random bytes, base64url: the key exists only in the parameters file and the vault.
  admin_key="sgwadm_$(head -c 36 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  file_parameters+=("\"adminApiKey\": {\"value\": $(json_string "$admin_key")}")
  unset admin_key
  log "A new management API key will be stored in Key Vault"
fi

# --- Provider keys: given now (stored, a new version if there was one), or kept from an earlier run
given_keys=()
stored_keys=()
for i in "${!PROVIDER_KEY_SETTINGS[@]}"; do
  name="${PROVIDER_KEY_SETTINGS[$i]}"
  if [[ -n "${provider_key_values[$i]}" ]]; then
    given_keys+=("$name")
    file_parameters+=("\"${PROVIDER_KEY_PARAMETERS[$i]}\": {\"value\": $(json_string "${provider_key_values[$i]}")}")
  fi
  if [[ -n "$vault_id" ]] && az resource show --ids "$vault_id/secrets/${PROVIDER_KEY_SECRETS[$i]}" --output none 2>/dev/null; then
    stored_keys+=("$name")
  fi
done
unset provider_key_values
if [[ ${#given_keys[@]} -gt 0 ]]; then
  log "Provider keys to store in Key Vault: ${given_keys[*]}"
fi
if [[ ${#stored_keys[@]} -gt 0 ]]; then
  log "Provider keys already in Key Vault: ${stored_keys[*]}"
  kept="$(printf '"%s", ' "${stored_keys[@]}")"
  file_parameters+=("\"storedProviderKeys\": {\"value\": [${kept%, }]}")
fi

# Every key_setting PROVIDERS names must be a key this deployment sets: given now or stored.
if [[ -n "$providers_file" ]]; then
  key_settings="$(python3 -c '
import json, sys
with open(sys.argv[1], encoding="utf-8") as file:
    accounts = json.load(file)
for account in accounts.values():
    if isinstance(account, dict) and isinstance(account.get("key_setting"), str):
        print(account["key_setting"].strip())
' "$providers_file")"
  for setting in $key_settings; do
    case " ${PROVIDER_KEY_SETTINGS[*]} " in
      *" $setting "*) ;;
      *) die "$providers_file names key_setting $setting; the deployment sets only ${PROVIDER_KEY_SETTINGS[*]}" ;;
    esac
    case " ${given_keys[*]-} ${stored_keys[*]-} " in
      *" $setting "*) ;;
      *) die "$providers_file names key_setting $setting, but no such key is given (--provider-keys or the environment) or stored" ;;
    esac
  done
  file_parameters+=("\"providers\": {\"value\": $(json_string "$providers_json")}")
fi
if [[ -n "$catalog_file" ]]; then
  file_parameters+=("\"modelCatalog\": {\"value\": $(json_string "$catalog_json")}")
fi

key_params=()
if [[ ${#file_parameters[@]} -gt 0 ]]; then
  (
    # The umask first: the file is created private, before anything is written to it.
    umask 077
    {
      printf '{"contentVersion": "1.0.0.0", "parameters": {'
      separator=""
      for parameter in "${file_parameters[@]}"; do
        printf '%s%s' "$separator" "$parameter"
        separator=", "
      done
      printf '}}\n'
    } >"$parameters_file"
  )
  key_params=(--parameters "@$parameters_file")
fi
unset file_parameters

# --- Who may read the key afterwards: the identity running this script -------------------------
operator_params=()
if [[ "$operator_access" == true ]]; then
  operator_id=""
  operator_type=""
  case "$(az account show --query user.type --output tsv)" in
    user)
      operator_id="$(az ad signed-in-user show --query id --output tsv 2>/dev/null || true)"
      operator_type="User"
      ;;
    servicePrincipal)
      operator_id="$(az ad sp show --id "$(az account show --query user.name --output tsv)" --query id --output tsv 2>/dev/null || true)"
      operator_type="ServicePrincipal"
      ;;
  esac
  if [[ -n "$operator_id" ]]; then
    operator_params=(--parameters "operatorPrincipalId=$operator_id" "operatorPrincipalType=$operator_type")
  else
    log "Could not resolve the signed-in identity's object id; it gets no read access to the management key"
  fi
fi

# --- Infrastructure --------------------------------------------------------------------------------
deploy_args=(
  --resource-group "$resource_group"
  --name "$DEPLOYMENT_NAME"
  --template-file "$TEMPLATE"
  --parameters "location=$location" "openAiAccountName=$openai_name"
  "openAiResourceGroup=$openai_resource_group" "openAiSubscriptionId=$openai_subscription"
)
if [[ ${#key_params[@]} -gt 0 ]]; then
  deploy_args+=("${key_params[@]}")
fi
if [[ ${#operator_params[@]} -gt 0 ]]; then
  deploy_args+=("${operator_params[@]}")
fi
if [[ ${#params[@]} -gt 0 ]]; then
  deploy_args+=(--parameters "${params[@]}")
fi

if [[ "$what_if" == true ]]; then
  log "What-if of $TEMPLATE (the template changes nothing)"
  az deployment group what-if "${deploy_args[@]}"
  exit 0
fi
log "Deploying $TEMPLATE (a few minutes)"
az deployment group create "${deploy_args[@]}" --output none
rm -f "$parameters_file"

output() {
  az deployment group show --resource-group "$resource_group" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.$1.value" --output tsv
}
app_name="$(output functionAppName)"
base_url="$(output baseUrl)"
health_url="$(output healthUrl)"
vault_name="$(output keyVaultName)"

# --- Code --------------------------------------------------------------------------------------
if [[ "$skip_code" == false ]]; then
  if [[ "$publisher" == auto ]]; then
    if command -v func >/dev/null 2>&1; then publisher=func; else publisher=az; fi
  fi
  log "Publishing the code to $app_name with $publisher (remote build)"
  if [[ "$publisher" == func ]]; then
    (cd "$ROOT" && func azure functionapp publish "$app_name" --python --build remote)
  else
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to build the package"
    python3 "$ROOT/scripts/package.py" "$work/app.zip" >&2
    az functionapp deployment source config-zip --resource-group "$resource_group" --name "$app_name" \
      --src "$work/app.zip" --build-remote true --timeout 900 --output none
  fi
  if command -v curl >/dev/null 2>&1; then
    log "Waiting for $health_url"
    healthy=false
    for _ in $(seq 1 30); do
      if curl --silent --fail --max-time 10 --output /dev/null "$health_url"; then
        healthy=true
        break
      fi
      sleep 10
    done
    if [[ "$healthy" == true ]]; then
      log "Healthy"
    else
      log "Not healthy yet: check the app's logs in Application Insights (a first start can take minutes)"
    fi
  fi
fi

if [[ "$rotate_key" == true || ${#given_keys[@]} -gt 0 ]]; then
  # App settings are read at start: restart so the new key versions are resolved now.
  az functionapp restart --resource-group "$resource_group" --name "$app_name" --output none
fi

# --- What next ---------------------------------------------------------------------------------
cat <<EOF

Sora gateway deployed.
  Function app:  $app_name
  Base URL:      $base_url      (OpenAI SDK base_url)
  Health:        $health_url

Create the first app with the management API. The key stays in Key Vault ($vault_name):

  ADMIN_KEY="\$(az keyvault secret show --vault-name $vault_name --name $SECRET_NAME --query value --output tsv)"
  curl -sS -X POST "$base_url/manage/apps" \\
       -H "x-admin-key: \$ADMIN_KEY" -H "Content-Type: application/json" \\
       -d '{"name": "my-first-app", "plan": "pro"}'

The response shows the app's api_key and webhook_secret once; keep them.
EOF

if [[ "$show_key" == true ]]; then
  # The role assignment that lets you read it can take a minute or two to apply.
  for _ in $(seq 1 12); do
    if key="$(az keyvault secret show --vault-name "$vault_name" --name "$SECRET_NAME" --query value --output tsv 2>/dev/null)"; then
      printf '\nADMIN_API_KEY=%s\n' "$key"
      exit 0
    fi
    sleep 10
  done
  die "could not read $SECRET_NAME from $vault_name (do you have Key Vault Secrets User on it?)"
fi
