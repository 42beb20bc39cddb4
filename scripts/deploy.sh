#!/usr/bin/env bash
# Deploy the video gateway to Azure: the infrastructure in infra/main.bicep, then the code.
# Idempotent: run it again to apply template or code changes. See --help.
set -euo pipefail
# An Azure OpenAI account is optional (Sora 2 is retired): the models come from a provider key, a
# catalog or the legacy per-model parameters, and a deployment that would offer none is refused
# before anything in Azure is changed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/infra/main.bicep"
DEPLOYMENT_NAME="sora-gateway"
SECRET_NAME="admin-api-key"
VAULT_TAG="sora-gateway-secrets"
PROVIDERS=(Microsoft.Web Microsoft.Storage Microsoft.Insights Microsoft.OperationalInsights
  Microsoft.KeyVault Microsoft.ManagedIdentity Microsoft.CognitiveServices)
# Provider API keys: the app setting PROVIDERS' key_setting names (and the environment variable or
# --provider-keys line it is read from), the template's @secure() parameter, its Key Vault secret.
PROVIDER_KEY_SETTINGS=(AIMLAPI_API_KEY GEMINIGEN_API_KEY GEMINI_API_KEY FAL_KEY OPENAI_COMPATIBLE_API_KEY)
PROVIDER_KEY_PARAMETERS=(aimlapiApiKey geminigenApiKey geminiApiKey falKey openaiCompatibleApiKey)
PROVIDER_KEY_SECRETS=(aimlapi-api-key geminigen-api-key gemini-api-key fal-api-key openai-compatible-api-key)
# Template parameters that hold secrets: never taken from the command line.
SECURE_PARAMETERS=(adminApiKey "${PROVIDER_KEY_PARAMETERS[@]}")
# Template parameters this script sets from its own options, so that what it checks (the Azure
# OpenAI account, the accounts and models) is what is deployed: --param NAME=... is refused for them.
OPTION_PARAMETERS=(openAiAccountName:--openai openAiResourceGroup:--openai openAiSubscriptionId:--openai
  providers:--providers modelCatalog:--catalog storedProviderKeys:--provider-keys)
# The legacy per-model parameters: any of them makes the app derive its models on the Azure OpenAI
# account (the template writes each only when given).
LEGACY_MODEL_PARAMETERS=(soraDeployments allowedModels allowedSeconds allowedSizes modelOptions pricing)

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh RESOURCE_GROUP LOCATION [options]
       scripts/deploy.sh RESOURCE_GROUP LOCATION --provider-keys ~/provider-keys.env

Creates (or updates) the resource group, deploys infra/main.bicep into it, publishes the code with
a remote build, and prints the base URL and how to create the first app.

  RESOURCE_GROUP   resource group to deploy into (created if missing)
  LOCATION         Azure region with Flex Consumption, e.g. eastus2, swedencentral

The gateway needs at least one model, from one of:
  - a provider key (--provider-keys or the environment): AIMLAPI_API_KEY, GEMINIGEN_API_KEY,
    GEMINI_API_KEY or FAL_KEY gives that provider's built-in live models (veo-3.1 and veo-3.1-fast;
    veo-3.0 and veo-3.0-fast with GEMINI_API_KEY); a key stored by an earlier run counts;
  - --catalog FILE listing the models, on the accounts of --providers FILE, of the keys, or of
    --openai ACCOUNT (Azure OpenAI has no built-in models);
  - the legacy per-model parameters (--param soraDeployments=..., allowedModels, ...) with --openai.
A deployment that would offer none is refused before anything in Azure is changed.

Options:
  --provider-keys FILE         provider API keys, one NAME=VALUE a line (# comments allowed), NAME one
                               of AIMLAPI_API_KEY, GEMINIGEN_API_KEY, GEMINI_API_KEY, FAL_KEY,
                               OPENAI_COMPATIBLE_API_KEY; the same variables in the environment are
                               read too (the file wins). Each key goes to Key Vault; a key stored by
                               an earlier run is kept. Keys are never taken from the command line
                               (--param refuses them).
  --providers FILE             PROVIDERS: JSON object of provider accounts (docs/providers.md); give
                               it on every run, like --param
  --catalog FILE               MODEL_CATALOG: JSON list of models (docs/providers.md); give it on
                               every run, like --param
  --openai ACCOUNT             optional: an existing Azure OpenAI account the app may call with Entra
                               ID (its resource id, or its name looked up in the current
                               subscription); give it on every run, like --param
  --openai-resource-group RG   resource group of ACCOUNT when given by name (speeds up the lookup)
  --param NAME=VALUE           template parameter, repeatable; e.g.
                                 --param upstreamCreatesPerMinute=4
                                 --param useDurableTaskScheduler=true --param alwaysReadyHttpInstances=1
  --publisher auto|az|func     how to publish the code (auto: func when installed, else az)
  --skip-code                  deploy the infrastructure only
  --what-if                    show what the template would change, and stop
  --rotate-admin-key           store a new management API key (the old one stops working)
  --show-admin-key             print the management API key at the end (needs read access to the vault)
  --no-operator-access         do not grant the signed-in identity read access to the management key
  -h, --help                   this help

Deprecated: a third argument (scripts/deploy.sh RESOURCE_GROUP LOCATION OPENAI) is still taken as
--openai OPENAI; it no longer brings the retired Sora models with it.

After publishing, it waits for GET /api/health and fails (exit 1) when the app never answers it:
HEALTH_WAIT_ATTEMPTS (default 30) tries, HEALTH_WAIT_INTERVAL (default 10) seconds apart.

Needs: az (logged in with `az login`, Owner or Contributor + Role Based Access Control
Administrator on the resource group, and on the Azure OpenAI account when --openai is given),
python3.
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
legacy_models=false
params=()
positional=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --openai)
      [[ $# -ge 2 ]] || die "$1 needs an account name or resource id"
      openai="$2"
      shift 2
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
      for pair in "${OPTION_PARAMETERS[@]}"; do
        [[ "${2%%=*}" != "${pair%%:*}" ]] || die "${pair%%:*} is set by ${pair#*:}, not --param"
      done
      for legacy in "${LEGACY_MODEL_PARAMETERS[@]}"; do
        # An empty value writes no setting (the template's default), so it gives no model either.
        if [[ "${2%%=*}" == "$legacy" && ! "${2#*=}" =~ ^[[:space:]]*(|\{[[:space:]]*\}|\'\'|\"\")[[:space:]]*$ ]]; then
          legacy_models=true
        fi
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

[[ ${#positional[@]} -eq 2 || ${#positional[@]} -eq 3 ]] || {
  usage >&2
  exit 2
}
resource_group="${positional[0]}"
location="${positional[1]}"
if [[ ${#positional[@]} -eq 3 ]]; then
  # Kept so existing commands still run; the account alone no longer gives any model.
  [[ -z "$openai" ]] || die "the Azure OpenAI account is given twice (third argument and --openai)"
  openai="${positional[2]}"
  log "The third argument is deprecated: give the Azure OpenAI account as --openai $openai"
fi
if [[ -z "$openai" ]]; then
  [[ -z "$openai_resource_group" ]] || die "--openai-resource-group needs --openai ACCOUNT"
  for param in ${params[@]+"${params[@]}"}; do
    [[ "${param%%=*}" != openAiEndpoint ]] || die "--param openAiEndpoint needs --openai ACCOUNT"
  done
fi
case "$publisher" in
  auto | az | func) ;;
  *) die "--publisher must be auto, az or func" ;;
esac
[[ -f "$TEMPLATE" ]] || die "template not found: $TEMPLATE"
# How long to wait for the published app's health check: tries, and seconds between them.
health_attempts="${HEALTH_WAIT_ATTEMPTS:-30}"
health_interval="${HEALTH_WAIT_INTERVAL:-10}"
[[ "$health_attempts" =~ ^[1-9][0-9]*$ ]] || die "HEALTH_WAIT_ATTEMPTS must be a whole number, at least 1"
[[ "$health_interval" =~ ^[0-9]+$ ]] || die "HEALTH_WAIT_INTERVAL must be a whole number of seconds"

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

# --- The Azure OpenAI account (optional): a resource id, or a name to look up ---------------------
openai_params=()
if [[ -n "$openai" ]]; then
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
  log "Azure OpenAI account: ${id_parts[8]} (resource group ${id_parts[4]})"
  openai_params=(--parameters "openAiAccountName=${id_parts[8]}"
    "openAiResourceGroup=${id_parts[4]}" "openAiSubscriptionId=${id_parts[2]}")
else
  log "No Azure OpenAI account (optional: --openai ACCOUNT)"
fi

# --- What an earlier run left (read only: nothing in Azure changes before the checks below pass) ---
vault_id=""
if [[ "$(az group exists --name "$resource_group")" == true ]]; then
  vault_id="$(az keyvault list --resource-group "$resource_group" \
    --query "[?tags.\"$VAULT_TAG\"=='$SECRET_NAME'].id | [0]" --output tsv)"
fi

# --- The management API key: generated once, kept in Key Vault, never on a command line ----------
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

# --- At least one model: Sora 2 is retired, so nothing offers a model by default -----------------
# The accounts the app will have (PROVIDERS, or what it derives from the settings without it) and
# the models it will offer (MODEL_CATALOG, the legacy per-model settings, or its built-in models of
# AI/ML API, GeminiGen, Gemini API and fal accounts), worked out here so that a deployment the app
# would refuse at start, or that would offer nothing, stops before anything is created.
command -v python3 >/dev/null 2>&1 || die "python3 is needed to check what the deployment offers"
python3 - "$providers_file" "$catalog_file" "$([[ -n "$openai" ]] && echo true || echo false)" \
  "$legacy_models" ${given_keys[@]+"${given_keys[@]}"} ${stored_keys[@]+"${stored_keys[@]}"} <<'EOF' || exit 1
import json
import sys

providers_file, catalog_file, with_openai, legacy = sys.argv[1:5]
keys = set(sys.argv[5:])
# The only kinds the app has built-in models for (gateway/catalog.py BUILT_IN_MODELS).
BUILT_IN_KINDS = ("aimlapi", "geminigen", "gemini", "fal")
# Without PROVIDERS the app makes one account per key setting that is set (gateway/settings.py).
DEFAULT_ACCOUNTS = (
    ("AIMLAPI_API_KEY", "aimlapi"),
    ("GEMINIGEN_API_KEY", "geminigen"),
    ("GEMINI_API_KEY", "gemini"),
    ("FAL_KEY", "fal"),
)
if providers_file:
    with open(providers_file, encoding="utf-8") as file:
        table = json.load(file)
    accounts = {name: entry.get("kind") if isinstance(entry, dict) else None for name, entry in table.items()}
    if with_openai == "true":
        accounts.setdefault("azure-openai", "azure-openai")  # the template adds it
else:
    accounts = {name: name for setting, name in DEFAULT_ACCOUNTS if setting in keys}
    if with_openai == "true":
        accounts["azure-openai"] = "azure-openai"
names = ", ".join(accounts) or "none"
if catalog_file and legacy == "true":
    # The template would leave them out, and the app refuses them with MODEL_CATALOG anyway.
    sys.exit(
        "deploy: --catalog replaces the legacy model parameters (soraDeployments, allowedModels, "
        "allowedSeconds, allowedSizes, modelOptions, pricing): list those models in the catalog instead"
    )
if catalog_file:
    with open(catalog_file, encoding="utf-8") as file:
        models = json.load(file)
    for model in models:
        provider = model.get("provider") if isinstance(model, dict) else None
        model_id = model.get("id") if isinstance(model, dict) else model
        if provider in accounts:
            continue
        if provider == "azure-openai":
            sys.exit(
                f"deploy: {catalog_file} puts model {model_id!r} on provider 'azure-openai', but no Azure "
                "OpenAI account is given: add --openai ACCOUNT (or drop the model)"
            )
        sys.exit(
            f"deploy: {catalog_file} puts model {model_id!r} on provider {provider!r}, which the deployment "
            f"has no account for (its accounts: {names}); add it to --providers FILE, or give its key"
        )
elif legacy == "true":
    if "azure-openai" not in accounts:
        sys.exit(
            "deploy: the legacy model parameters (--param soraDeployments, allowedModels, allowedSeconds, "
            "allowedSizes, modelOptions, pricing) describe models on the Azure OpenAI account: add "
            "--openai ACCOUNT, or list the models in --catalog FILE instead"
        )
elif not [kind for kind in accounts.values() if kind in BUILT_IN_KINDS]:
    sys.exit(
        "deploy: this deployment would offer no video model (Sora 2 is retired, so there is no default; "
        f"accounts: {names}, and only AI/ML API, GeminiGen, Gemini API and fal accounts have built-in "
        "models). Give a provider key (--provider-keys FILE with AIMLAPI_API_KEY, GEMINIGEN_API_KEY, "
        "GEMINI_API_KEY or FAL_KEY: its built-in Veo models), or --catalog FILE listing the models "
        "(docs/deployment.md)"
    )
EOF

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

# --- Resource group and providers (both idempotent): the first changes in Azure -------------------
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
  --parameters "location=$location"
)
if [[ ${#openai_params[@]} -gt 0 ]]; then
  deploy_args+=("${openai_params[@]}")
fi
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
fi

if [[ "$rotate_key" == true || ${#given_keys[@]} -gt 0 ]]; then
  # App settings are read at start: restart so the new key versions are resolved now (before the
  # health wait, so that it is the restarted app that answers it).
  az functionapp restart --resource-group "$resource_group" --name "$app_name" --output none
fi

# --- Health: the published app must answer GET /api/health, or the deployment failed ------------
if [[ "$skip_code" == false ]] && command -v curl >/dev/null 2>&1; then
  log "Waiting for $health_url (up to $health_attempts tries, $health_interval s apart)"
  healthy=false
  for attempt in $(seq 1 "$health_attempts"); do
    if curl --silent --fail --max-time 10 --output /dev/null "$health_url"; then
      healthy=true
      break
    fi
    [[ "$attempt" -eq "$health_attempts" ]] || sleep "$health_interval"
  done
  [[ "$healthy" == true ]] ||
    die "the health check GET $health_url did not succeed in $health_attempts tries, $health_interval s apart: check the app's logs in Application Insights (a first start can take minutes; run this script again, it is idempotent)"
  log "Healthy"
fi

# --- What next ---------------------------------------------------------------------------------
cat <<EOF

Video gateway deployed.
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
