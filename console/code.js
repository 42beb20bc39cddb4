// The "Code" region: the request the New video form would send, as curl, Python and JavaScript.
// The key is always the placeholder $VGW_API_KEY, never the signed-in key.

import { $, wireTabs } from "/api/console/api.js";

const API = `${location.origin}/api/v1`;

// A string as a POSIX shell single-quoted word.
const shell = (text) => `'${String(text).replaceAll("'", "'\\''")}'`;
// JSON string literals are valid Python and JavaScript string literals too.
const literal = (text) => JSON.stringify(String(text));

function curl(request) {
  const lines = [`curl -s -X POST ${shell(`${API}/videos`)}`, `  -H "Authorization: Bearer $VGW_API_KEY"`];
  if (request.image) {
    for (const [name, value] of Object.entries(request.fields)) lines.push(`  -F ${shell(`${name}=${value}`)}`);
    lines.push(`  -F ${shell(`input_reference=@${request.image}`)}`);
  } else {
    lines.push(`  -H "Content-Type: application/json"`);
    lines.push(`  -d ${shell(JSON.stringify(request.fields))}`);
  }
  return lines.join(" \\\n");
}

function python(request) {
  const args = Object.entries(request.fields).map(([name, value]) => `    ${name}=${literal(value)},`);
  if (request.image) args.push(`    input_reference=open(${literal(request.image)}, "rb"),`);
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
    const appends = Object.entries(request.fields).map(([name, value]) => `form.append(${literal(name)}, ${literal(value)});`);
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
    `  body: JSON.stringify(${JSON.stringify(request.fields, null, 2).replaceAll("\n", "\n  ")}),`,
    "});",
    "console.log(response.status, await response.json());",
  ].join("\n");
}

/** Rewrites the three snippets for `request` = {fields: {model, prompt, seconds, size}, image: file name|null}. */
export function showCode(request) {
  $("code-curl").querySelector("code").textContent = curl(request);
  $("code-python").querySelector("code").textContent = python(request);
  $("code-js").querySelector("code").textContent = javascript(request);
}

export function initCode() {
  wireTabs($("code-tabs"));
}
