// The "Code" region: the request the New video form would send, as curl, Python and JavaScript.
// The key is always the placeholder $VGW_API_KEY, never the signed-in key.

import { $, wireTabs } from "/api/console/api.js";

const API = `${location.origin}/api/v1`;

// A string as a POSIX shell single-quoted word.
const shell = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;
// JSON string literals are valid Python and JavaScript string literals too.
const literal = (text) => JSON.stringify(String(text));
// A string or flag as Python writes it.
const pythonValue = (value) => (typeof value === "boolean" ? (value ? "True" : "False") : literal(value));
// The form's fields and options together: the API takes options as top-level fields.
const allFields = (request) => ({ ...request.fields, ...request.options });

function curl(request) {
  const lines = [`curl -s -X POST ${shell(`${API}/videos`)}`, `  -H "Authorization: Bearer $VGW_API_KEY"`];
  if (request.image) {
    for (const [name, value] of Object.entries(allFields(request))) lines.push(`  -F ${shell(`${name}=${value}`)}`);
    lines.push(`  -F ${shell(`input_reference=@${request.image}`)}`);
  } else {
    lines.push(`  -H "Content-Type: application/json"`);
    lines.push(`  -d ${shell(JSON.stringify(allFields(request)))}`);
  }
  return lines.join(" \\\n");
}

function python(request) {
  const args = Object.entries(request.fields).map(([name, value]) => `    ${name}=${literal(value)},`);
  if (request.image) args.push(`    input_reference=open(${literal(request.image)}, "rb"),`);
  // The SDK's create() has no parameters for the gateway's options: they go in extra_body.
  const options = Object.entries(request.options || {}).map(([name, value]) => `${literal(name)}: ${pythonValue(value)}`);
  if (options.length) args.push(`    extra_body={${options.join(", ")}},`);
  return [
    "import os",
    "",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${literal(API)}, api_key=os.environ["VGW_API_KEY"])`,
    "video = client.videos.create_and_poll(",
    ...args,
    ")",
    "print(video.id, video.status)",
  ].join("\n");
}

function javascript(request) {
  const headers = `Authorization: \`Bearer \${process.env.VGW_API_KEY}\``;
  if (request.image) {
    const appends = Object.entries(allFields(request)).map(([name, value]) => `form.append(${literal(name)}, ${literal(value)});`);
    return [
      'import { openAsBlob } from "node:fs";',
      "",
      "const form = new FormData();",
      ...appends,
      `form.append("input_reference", await openAsBlob(${literal(request.image)}), ${literal(request.image)});`,
      `const response = await fetch(${literal(`${API}/videos`)}, {`,
      '  method: "POST",',
      `  headers: { ${headers} },`,
      "  body: form,",
      "});",
      "console.log(response.status, await response.json());",
    ].join("\n");
  }
  return [
    `const response = await fetch(${literal(`${API}/videos`)}, {`,
    '  method: "POST",',
    `  headers: { ${headers}, "Content-Type": "application/json" },`,
    `  body: JSON.stringify(${JSON.stringify(allFields(request), null, 2).replaceAll("\n", "\n  ")}),`,
    "});",
    "console.log(response.status, await response.json());",
  ].join("\n");
}

/**
 * Rewrites the three snippets for `request` = {fields: {model, prompt, seconds, size},
 * options: {name: value} of the model's options that are set, image: file name|null}.
 */
export function showCode(request) {
  $("code-curl").querySelector("code").textContent = curl(request);
  $("code-python").querySelector("code").textContent = python(request);
  $("code-js").querySelector("code").textContent = javascript(request);
}

export function initCode() {
  wireTabs($("code-tabs"));
}
