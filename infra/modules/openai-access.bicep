// Lets the gateway's identity call an existing Azure OpenAI (or AI Foundry / AI Services) account
// with Entra ID tokens, and reports the account's OpenAI endpoint. Deployed at the account's own
// resource group, which may be in another resource group or subscription than the gateway. Optional:
// main.bicep deploys it only when an account is named.

@description('Name of the existing Azure OpenAI account (kind OpenAI or AIServices) whose deployments the gateway calls.')
param accountName string

@description('Principal (object) id of the identity that calls the account.')
param principalId string

@description('Resource id of that identity, only used to name the role assignment deterministically.')
param principalResourceId string

// Cognitive Services OpenAI User: call inference APIs (create, read, delete video jobs and download
// their content) with an Entra ID token; no keys, no management rights.
var cognitiveServicesOpenAIUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalResourceId, cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    description: 'Sora gateway: call Azure OpenAI with Entra ID tokens'
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
  }
}

@description('Resource id of the account.')
output accountId string = account.id

// Entra ID authentication needs the account's custom subdomain; the v1 API lives on its
// openai.azure.com host for both OpenAI and AIServices accounts.
@description('The account endpoint the gateway calls (AZURE_OPENAI_ENDPOINT).')
output endpoint string = 'https://${account.properties.customSubDomainName}.openai.azure.com'
