// The video gateway in one resource group: a Python Function App on the Flex Consumption plan with a
// user-assigned managed identity, its Storage account (no shared keys), Application Insights (Entra
// ID only), a Key Vault holding the management API key and the provider keys, and the role
// assignments the identity needs; and, only when an existing Azure OpenAI account is named
// (openAiAccountName), Cognitive Services OpenAI User on it.
//
// No Azure OpenAI account is required: Sora 2 is retired (no new deployments on Azure OpenAI, and
// OpenAI's Videos API is shut down), so the models come from a provider key (the app then offers its
// built-in live models for that provider), a modelCatalog, or, for an existing setup, the legacy
// per-model parameters. Nothing here defaults to a Sora model: a default that names a retired model
// would deploy an app that cannot make a single video.
//
// Plain resources and one local module: nothing to restore from a registry. Deploy with
// scripts/deploy.sh (which also publishes the code and refuses a deployment that would offer no
// model), or directly, e.g. with a key kept in a private parameters file:
//   az deployment group create -g <rg> --template-file infra/main.bicep --parameters @keys.json
// The template never holds a secret: ADMIN_API_KEY is a Key Vault reference, and the key itself is
// written to the vault only when the @secure() adminApiKey parameter is given (deploy.sh generates it
// on the first run, or with --rotate-admin-key). Provider API keys (aimlapiApiKey, geminigenApiKey,
// geminiApiKey, falKey, openaiCompatibleApiKey, all @secure()) follow the same pattern: each given key becomes a vault secret
// and an app setting holding a Key Vault reference (AIMLAPI_API_KEY, ...), which PROVIDERS' key_setting
// names; deploy.sh reads them from a file or the environment (docs/providers.md).

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Where and what
// ---------------------------------------------------------------------------------------------

@description('Region for every resource (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('Prefix of resource names.')
@minLength(2)
@maxLength(20)
param namePrefix string = 'sora-gw'

@description('Function app name (becomes <name>.azurewebsites.net); empty = <namePrefix>-<unique suffix>.')
param functionAppName string = ''

@description('Tags added to every resource.')
param tags object = {}

@description('Python version of the app. 3.13 is the first with runtime version control: Azure runs the app on the azure-functions-runtime release pinned in requirements.txt.')
@allowed([
  '3.13'
])
param pythonVersion string = '3.13'

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances for the HTTP functions (billed while idle; 0 = scale to zero).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Always-ready instances for the Durable Functions group (orchestrations and activities).')
@minValue(0)
param alwaysReadyDurableInstances int = 0

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---------------------------------------------------------------------------------------------
// Azure OpenAI (optional)
// ---------------------------------------------------------------------------------------------

@description('Name of an existing Azure OpenAI / AI Services account the app may call with Entra ID; empty (the default) = none: no role assignment, no AZURE_OPENAI_ENDPOINT and no "azure-openai" provider account. Its models have no built-in catalog entries: list them in modelCatalog.')
param openAiAccountName string = ''

@description('Resource group of that account (default: this one).')
param openAiResourceGroup string = resourceGroup().name

@description('Subscription of that account (default: this one).')
param openAiSubscriptionId string = subscription().subscriptionId

@description('Endpoint override for that account; empty = https://<custom subdomain>.openai.azure.com of the account. Ignored without openAiAccountName.')
param openAiEndpoint string = ''

// The legacy per-model parameters, kept so existing parameter files still deploy. Each setting is
// written only when its parameter is given: the app treats any of them as "derive the models on the
// Azure OpenAI account", so a default here would bring the retired Sora models back.

@description('Legacy (SORA_DEPLOYMENTS): model name -> Azure deployment name; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param soraDeployments object = {}

@description('Legacy (ALLOWED_MODELS): models apps may ask for, comma-separated; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param allowedModels string = ''

@description('Legacy (ALLOWED_SECONDS): accepted video lengths in seconds, comma-separated; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param allowedSeconds string = ''

@description('Legacy (ALLOWED_SIZES): accepted sizes, comma-separated; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param allowedSizes string = ''

@description('Legacy (MODEL_OPTIONS): model -> {"sizes", "seconds"} it accepts upstream; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param modelOptions object = {}

@description('Legacy (PRICING): USD per second of video by model and size; empty (the default) = not set. Needs openAiAccountName; prefer modelCatalog.')
param pricing object = {}

@description('Upstream job creations per minute of a provider account that sets no creates_per_minute of its own, shared by all apps; match the provider\'s quota (0 = unpaced).')
@minValue(0)
param upstreamCreatesPerMinute int = 2

// ---------------------------------------------------------------------------------------------
// Other video providers and the model catalog (docs/providers.md)
// ---------------------------------------------------------------------------------------------

@description('MODEL_CATALOG: a JSON list of models, each {"id", "provider", "provider_model", "sizes", "seconds", "image_input", "remix", "price_per_second"}. Empty (the default) = the app\'s built-in live models of each AI/ML API, GeminiGen, Gemini API and fal account (Azure OpenAI and OpenAI-compatible accounts have none), or the legacy per-model parameters when given. When given, the legacy per-model settings are left out (the app refuses both).')
param modelCatalog string = ''

@description('PROVIDERS: a JSON object, account name -> {"kind", "base_url", "key_setting", "options", "creates_per_minute"}; key_setting names AIMLAPI_API_KEY, GEMINIGEN_API_KEY, GEMINI_API_KEY, FAL_KEY or OPENAI_COMPATIBLE_API_KEY, never the key. Empty (the default) = the app derives the accounts from the settings that exist: "aimlapi" with AIMLAPI_API_KEY, "geminigen" with GEMINIGEN_API_KEY, "gemini" with GEMINI_API_KEY, "fal" with FAL_KEY, "azure-openai" with AZURE_OPENAI_ENDPOINT. When given and openAiAccountName is set, an "azure-openai" account at that endpoint (Entra ID) is added unless the object names its own.')
param providers string = ''

@secure()
@description('AI/ML API key; given, it is stored in Key Vault and AIMLAPI_API_KEY references it. Empty creates nothing (see storedProviderKeys).')
param aimlapiApiKey string = ''

@secure()
@description('GeminiGen API key; given, it is stored in Key Vault and GEMINIGEN_API_KEY references it. Empty creates nothing (see storedProviderKeys).')
param geminigenApiKey string = ''

@secure()
@description('Gemini API key (Google); given, it is stored in Key Vault and GEMINI_API_KEY references it. Empty creates nothing (see storedProviderKeys).')
param geminiApiKey string = ''

@secure()
@description('fal key; given, it is stored in Key Vault and FAL_KEY references it. Empty creates nothing (see storedProviderKeys).')
param falKey string = ''

@secure()
@description('Key of an OpenAI-compatible service; given, it is stored in Key Vault and OPENAI_COMPATIBLE_API_KEY references it. Empty creates nothing (see storedProviderKeys).')
param openaiCompatibleApiKey string = ''

@description('Key settings (AIMLAPI_API_KEY, GEMINIGEN_API_KEY, GEMINI_API_KEY, FAL_KEY, OPENAI_COMPATIBLE_API_KEY) whose secret is already in Key Vault from an earlier deployment: their reference is kept although the key is not given again (deploy.sh finds them).')
param storedProviderKeys array = []

// ---------------------------------------------------------------------------------------------
// Plans, jobs, retention
// ---------------------------------------------------------------------------------------------

@description('Money budgets and charge policy per plan, e.g. {"pro": {"month": 100, "threshold": 0.8}}; {} means no budget (PLAN_BUDGETS).')
param planBudgets object = {}

@description('Limits per plan, rolling windows; null disables video for that plan (PLAN_LIMITS).')
param planLimits object = {
  free: null
  pro: {
    hour: 5
    day: 20
  }
  business: {
    hour: 5
    day: 20
  }
}

@description('CORS_ALLOWED_ORIGINS: web origins besides the gateway\'s own whose pages may call the API, comma-separated and exact (https://app.example.com). Empty (the default): none. The platform\'s own CORS list stays empty, so the app answers preflights itself.')
param corsAllowedOrigins string = ''

@description('Failures in a row after which a provider account cools down: jobs skip it for their model\'s next route (PROVIDER_FAILURES_TO_COOL_DOWN).')
@minValue(1)
param providerFailuresToCoolDown int = 3

@description('Seconds a failing provider account is skipped before it is tried again (PROVIDER_COOL_DOWN_SECONDS).')
@minValue(1)
param providerCoolDownSeconds int = 60

@description('Longest prompt accepted, in characters (MAX_PROMPT_CHARS).')
@minValue(1)
param maxPromptChars int = 4000

@description('A job not finished by then fails with timeout (JOB_TIMEOUT_MINUTES).')
@minValue(1)
param jobTimeoutMinutes int = 60

@description('Lower bound of the adaptive status-check interval, seconds (POLL_MIN_SECONDS).')
param pollMinSeconds string = '3'

@description('Longest wait between status checks made without a learned forecast, seconds (POLL_MAX_SECONDS).')
param pollMaxSeconds string = '60'

@description('Webhook retry delays in seconds, comma-separated (WEBHOOK_RETRY_SECONDS).')
param webhookRetrySeconds string = '30,60,120,300,600'

@description('Lifetime of each read-only SAS URL, minutes (SAS_TTL_MINUTES).')
@minValue(1)
param sasTtlMinutes int = 60

@description('Days a stored video lives: its expires_at, and the lifecycle rule that deletes it (VIDEO_RETENTION_DAYS).')
@minValue(1)
param videoRetentionDays int = 7

@description('Blob container for the MP4s and thumbnails (VIDEOS_CONTAINER).')
@minLength(3)
@maxLength(63)
param videosContainer string = 'videos'

@description('NCRONTAB schedule of the housekeeping timer (SWEEP_SCHEDULE).')
param sweepSchedule string = '0 */30 * * * *'

@description('Durable Functions task hub (TASK_HUB_NAME, used by host.json): letters and digits, starting with a letter.')
@minLength(3)
@maxLength(45)
param taskHubName string = 'SoraGateway'

// ---------------------------------------------------------------------------------------------
// Durable backend, secrets, operator access
// ---------------------------------------------------------------------------------------------

@description('Use the Durable Task Scheduler (azureManaged provider) instead of Azure Storage queues and tables for Durable Functions.')
param useDurableTaskScheduler bool = false

@description('Durable Task Scheduler SKU when useDurableTaskScheduler is true.')
@allowed([
  'Consumption'
  'Dedicated'
])
param durableTaskSchedulerSku string = 'Consumption'

@secure()
@description('Management API key to store in Key Vault; empty leaves the stored one unchanged (deploy.sh generates one on the first run).')
param adminApiKey string = ''

@description('Object id of the operator who may read the management key from Key Vault; empty = nobody but the app.')
param operatorPrincipalId string = ''

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// ---------------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var appName = empty(functionAppName) ? '${namePrefix}-${token}' : functionAppName
var storageAccountName = 'st${token}'
var keyVaultName = 'kv-${token}'
var deploymentContainer = 'app-package'
var adminKeySecretName = 'admin-api-key'
// An Azure OpenAI account is optional: its role, endpoint and provider account exist only with one.
var withOpenAi = !empty(openAiAccountName)
// Provider key setting -> its Key Vault secret (PROVIDERS' key_setting names the setting).
var providerKeySecretNames = {
  AIMLAPI_API_KEY: 'aimlapi-api-key'
  GEMINIGEN_API_KEY: 'geminigen-api-key'
  GEMINI_API_KEY: 'gemini-api-key'
  FAL_KEY: 'fal-api-key'
  OPENAI_COMPATIBLE_API_KEY: 'openai-compatible-api-key'
}
var allTags = union(tags, {
  'sora-gateway': appName
})
var storageSuffix = environment().suffixes.storage

// Tables the gateway uses; it also creates them on first use, so this list only saves a round trip.
var gatewayTables = [
  'apps'
  'appkeys'
  'jobs'
  'quota'
  'pacing'
  'upstreamclaims'
  'idempotency'
]

// Always-ready instances per Flex scale group ('http', 'durable'); none by default.
var alwaysReadyHttp = alwaysReadyHttpInstances > 0 ? [ { name: 'http', instanceCount: alwaysReadyHttpInstances } ] : []
var alwaysReadyDurable = alwaysReadyDurableInstances > 0 ? [ { name: 'durable', instanceCount: alwaysReadyDurableInstances } ] : []
var schedulerSku = durableTaskSchedulerSku == 'Dedicated' ? { name: 'Dedicated', capacity: 1 } : { name: 'Consumption' }

// Built-in role definition ids (the same in every tenant).
var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  durableTaskDataContributor: '0ad04412-c4d5-4796-b79c-f76d14c8d402'
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${appName}'
  location: location
  tags: allTags
}

// ---------------------------------------------------------------------------------------------
// Storage: host state, Durable Functions (default backend), deployment package, gateway data
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

resource videos 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: videosContainer
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in gatewayTables: {
    parent: tableService
    name: table
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Videos expire: the rule runs once a day and deletes blobs in the videos container older than the
// retention, so a video disappears at most about a day after its expires_at.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'deleteExpiredVideos'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${videosContainer}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: videoRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    videos
  ]
}

// ---------------------------------------------------------------------------------------------
// Monitoring: Application Insights with local (key) authentication off
// ---------------------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${appName}'
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${appName}'
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------
// Key Vault: the management API key, read by the app through a Key Vault reference
// ---------------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: union(allTags, {
    'sora-gateway-secrets': 'admin-api-key'
  })
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

resource adminKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(adminApiKey)) {
  parent: vault
  name: adminKeySecretName
  properties: {
    value: adminApiKey
    contentType: 'text/plain'
  }
}

// Provider API keys: written only when given (a new version when given again); never in outputs.
resource aimlapiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(aimlapiApiKey)) {
  parent: vault
  name: providerKeySecretNames.AIMLAPI_API_KEY
  properties: {
    value: aimlapiApiKey
    contentType: 'text/plain'
  }
}

resource geminigenKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(geminigenApiKey)) {
  parent: vault
  name: providerKeySecretNames.GEMINIGEN_API_KEY
  properties: {
    value: geminigenApiKey
    contentType: 'text/plain'
  }
}

resource geminiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(geminiApiKey)) {
  parent: vault
  name: providerKeySecretNames.GEMINI_API_KEY
  properties: {
    value: geminiApiKey
    contentType: 'text/plain'
  }
}

resource falKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(falKey)) {
  parent: vault
  name: providerKeySecretNames.FAL_KEY
  properties: {
    value: falKey
    contentType: 'text/plain'
  }
}

resource openaiCompatibleKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(openaiCompatibleApiKey)) {
  parent: vault
  name: providerKeySecretNames.OPENAI_COMPATIBLE_API_KEY
  properties: {
    value: openaiCompatibleApiKey
    contentType: 'text/plain'
  }
}

// ---------------------------------------------------------------------------------------------
// Optional Durable Task Scheduler backend
// ---------------------------------------------------------------------------------------------

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = if (useDurableTaskScheduler) {
  name: 'dts-${appName}'
  location: location
  tags: allTags
  properties: {
    // The scheduler is reached over its public endpoint with Entra ID; an empty list would deny all.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
    sku: schedulerSku
  }
}

resource schedulerHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = if (useDurableTaskScheduler) {
  parent: scheduler
  name: taskHubName
  properties: {}
}

// ---------------------------------------------------------------------------------------------
// Function App on Flex Consumption
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}'
  location: location
  tags: allTags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: allTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
    }
    // On Flex Consumption the runtime, the scale settings and where the code comes from live here,
    // not in app settings (FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not set).
    functionAppConfig: {
      runtime: {
        name: 'python'
        version: pythonVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: concat(alwaysReadyHttp, alwaysReadyDurable)
      }
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storage.name}.blob.${storageSuffix}/${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
    }
  }
  dependsOn: [
    packageContainer
  ]
}

// No publishing passwords: deployments authenticate with Entra ID (az / func use a bearer token).
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------
// Role assignments for the app's identity
// ---------------------------------------------------------------------------------------------

// Host state and leases, Durable Functions blobs, the deployment package, the videos, and user
// delegation keys for the SAS URLs.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    description: 'Sora gateway: host, Durable Functions, deployment package and video blobs'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
  }
}

// Durable Functions control and work-item queues (Azure Storage backend).
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    description: 'Sora gateway: Durable Functions queues'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
  }
}

// Durable Functions history and instances, and the gateway's apps, keys, jobs, quota and pacing rows.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    description: 'Sora gateway: Durable Functions and gateway tables'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
  }
}

// Telemetry into Application Insights with Entra ID (local auth is off).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    description: 'Sora gateway: send telemetry with Entra ID'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
  }
}

// Resolve the ADMIN_API_KEY (and provider key) Key Vault references.
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    description: 'Sora gateway: read the management API key and provider keys'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
  }
}

// Orchestrations, activities and timers on the Durable Task Scheduler, when it is the backend.
resource schedulerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useDurableTaskScheduler) {
  name: guid(resourceGroup().id, 'dts-${appName}', identity.id, roleIds.durableTaskDataContributor)
  scope: scheduler
  properties: {
    description: 'Sora gateway: Durable Functions on the Durable Task Scheduler'
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.durableTaskDataContributor)
  }
}

// The operator who deployed may read the management key (scripts/deploy.sh --show-admin-key).
resource operatorSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    description: 'Sora gateway operator: read the management API key'
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
  }
}

// Cognitive Services OpenAI User on the existing account, wherever it lives; only when one is named
// (an empty name would make the deployment look up an account that does not exist and fail).
module openAiAccess 'modules/openai-access.bicep' = if (withOpenAi) {
  name: 'openai-access-${token}'
  scope: resourceGroup(openAiSubscriptionId, openAiResourceGroup)
  params: {
    accountName: openAiAccountName
    principalId: identity.properties.principalId
    principalResourceId: identity.id
  }
}

// ---------------------------------------------------------------------------------------------
// App settings: every setting the code reads, and the host's identity-based connections
// ---------------------------------------------------------------------------------------------

var hostSettings = {
  // AzureWebJobsStorage through the identity: no connection string, no account key.
  AzureWebJobsStorage__blobServiceUri: 'https://${storage.name}.blob.${storageSuffix}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storage.name}.queue.${storageSuffix}'
  AzureWebJobsStorage__tableServiceUri: 'https://${storage.name}.table.${storageSuffix}'
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  TASK_HUB_NAME: taskHubName
  SWEEP_SCHEDULE: sweepSchedule
}

// The endpoint only with an account: the module's output exists only then (ARM evaluates only the
// branch a condition picks), and the app treats AZURE_OPENAI_ENDPOINT as "there is an azure-openai
// account", so it is never set without the role that lets the identity call it.
var azureOpenAiEndpoint = withOpenAi ? (empty(openAiEndpoint) ? openAiAccess.outputs.endpoint : openAiEndpoint) : ''
var openAiSettings = withOpenAi ? {
  AZURE_OPENAI_ENDPOINT: azureOpenAiEndpoint
} : {}

var gatewaySettings = {
  AZURE_CLIENT_ID: identity.properties.clientId
  ADMIN_API_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${adminKeySecretName})'
  VIDEOS_CONTAINER: videosContainer
  SAS_TTL_MINUTES: string(sasTtlMinutes)
  VIDEO_RETENTION_DAYS: string(videoRetentionDays)
  JOB_TIMEOUT_MINUTES: string(jobTimeoutMinutes)
  POLL_MIN_SECONDS: pollMinSeconds
  POLL_MAX_SECONDS: pollMaxSeconds
  MAX_PROMPT_CHARS: string(maxPromptChars)
  PLAN_LIMITS: string(planLimits)
  PLAN_BUDGETS: string(planBudgets)
  UPSTREAM_CREATES_PER_MINUTE: string(upstreamCreatesPerMinute)
  WEBHOOK_RETRY_SECONDS: webhookRetrySeconds
  PROVIDER_FAILURES_TO_COOL_DOWN: string(providerFailuresToCoolDown)
  PROVIDER_COOL_DOWN_SECONDS: string(providerCoolDownSeconds)
  // Webhook and image URLs must be public https in Azure.
  ALLOW_LOCAL_URLS: 'false'
}

// The models: MODEL_CATALOG when given; else each legacy per-model setting the operator gave (any
// one of them switches the app to deriving the models on the Azure OpenAI account); else nothing,
// and the app offers its built-in live models of the provider accounts it has.
var soraDeploymentsSetting = empty(soraDeployments) ? {} : { SORA_DEPLOYMENTS: string(soraDeployments) }
var allowedModelsSetting = empty(allowedModels) ? {} : { ALLOWED_MODELS: allowedModels }
var allowedSecondsSetting = empty(allowedSeconds) ? {} : { ALLOWED_SECONDS: allowedSeconds }
var allowedSizesSetting = empty(allowedSizes) ? {} : { ALLOWED_SIZES: allowedSizes }
var modelOptionsSetting = empty(modelOptions) ? {} : { MODEL_OPTIONS: string(modelOptions) }
var pricingSetting = empty(pricing) ? {} : { PRICING: string(pricing) }
var legacyModelSettings = union(soraDeploymentsSetting, allowedModelsSetting, allowedSecondsSetting, allowedSizesSetting, modelOptionsSetting, pricingSetting)
var modelSettings = empty(modelCatalog) ? legacyModelSettings : { MODEL_CATALOG: modelCatalog }
var corsSettings = empty(corsAllowedOrigins) ? {} : { CORS_ALLOWED_ORIGINS: corsAllowedOrigins }

// PROVIDERS only when given, with the deployed Azure OpenAI account (when there is one) unless it
// names its own "azure-openai" (no key_setting: the identity's Entra ID tokens). Without an account
// there is no endpoint and no role, so such an entry could only fail.
var defaultProviderAccount = withOpenAi ? {
  'azure-openai': {
    kind: 'azure-openai'
    base_url: azureOpenAiEndpoint
  }
} : {}
var providerSettings = empty(providers) ? {} : { PROVIDERS: string(union(defaultProviderAccount, json(empty(providers) ? '{}' : providers))) }

// Provider keys: a Key Vault reference for each key given now or stored by an earlier deployment.
var givenProviderKeys = concat(empty(aimlapiApiKey) ? [] : [ 'AIMLAPI_API_KEY' ], empty(geminigenApiKey) ? [] : [ 'GEMINIGEN_API_KEY' ], empty(geminiApiKey) ? [] : [ 'GEMINI_API_KEY' ], empty(falKey) ? [] : [ 'FAL_KEY' ], empty(openaiCompatibleApiKey) ? [] : [ 'OPENAI_COMPATIBLE_API_KEY' ])
var referencedProviderKeys = union(givenProviderKeys, storedProviderKeys)
var aimlapiKeySetting = contains(referencedProviderKeys, 'AIMLAPI_API_KEY') ? {
  AIMLAPI_API_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${providerKeySecretNames.AIMLAPI_API_KEY})'
} : {}
var geminigenKeySetting = contains(referencedProviderKeys, 'GEMINIGEN_API_KEY') ? {
  GEMINIGEN_API_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${providerKeySecretNames.GEMINIGEN_API_KEY})'
} : {}
var geminiKeySetting = contains(referencedProviderKeys, 'GEMINI_API_KEY') ? {
  GEMINI_API_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${providerKeySecretNames.GEMINI_API_KEY})'
} : {}
var falKeySetting = contains(referencedProviderKeys, 'FAL_KEY') ? {
  FAL_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${providerKeySecretNames.FAL_KEY})'
} : {}
var openaiCompatibleKeySetting = contains(referencedProviderKeys, 'OPENAI_COMPATIBLE_API_KEY') ? {
  OPENAI_COMPATIBLE_API_KEY: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${providerKeySecretNames.OPENAI_COMPATIBLE_API_KEY})'
} : {}
var providerKeySettings = union(aimlapiKeySetting, geminigenKeySetting, geminiKeySetting, falKeySetting, openaiCompatibleKeySetting)

// host.json keeps the Azure Storage backend; these override it (AzureFunctionsJobHost__ maps onto
// host.json) only when the Durable Task Scheduler is chosen.
var schedulerOverrides = {
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${scheduler.properties.endpoint};Authentication=ManagedIdentity;ClientID=${identity.properties.clientId}'
}
var schedulerSettings = useDurableTaskScheduler ? schedulerOverrides : {}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(hostSettings, gatewaySettings, openAiSettings, modelSettings, corsSettings, providerSettings, providerKeySettings, schedulerSettings)
  dependsOn: [
    // Secrets written by this deployment exist before the references to them are applied.
    adminKeySecret
    aimlapiKeySecret
    geminigenKeySecret
    geminiKeySecret
    falKeySecret
    openaiCompatibleKeySecret
    // The host starts with these settings: let it find its roles and its tables already there.
    blobOwner
    queueContributor
    tableContributor
    metricsPublisher
    vaultSecretsUser
    schedulerContributor
    schedulerHub
    tables
    queueService
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (read by scripts/deploy.sh)
// ---------------------------------------------------------------------------------------------

output functionAppName string = site.name
output baseUrl string = 'https://${site.properties.defaultHostName}/api/v1'
output healthUrl string = 'https://${site.properties.defaultHostName}/api/health'
output keyVaultName string = vault.name
output adminKeySecretName string = adminKeySecretName
output storageAccountName string = storage.name
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
@description('The Azure OpenAI endpoint the app calls; empty when no account was given.')
output openAiEndpoint string = azureOpenAiEndpoint
output durableBackend string = useDurableTaskScheduler ? 'durable-task-scheduler' : 'azure-storage'
