// The New video form's per-request options: inputs for those the chosen model declares (its
// `options` in GET /v1/models), and the values to send. Nothing is sent for an input left at
// the model's default, so a request never carries an option the model does not take.

import { $, el } from "/api/console/api.js";

// Option name -> the id of its input; each input sits in a field whose id adds "-field".
const INPUTS = { negative_prompt: "negative-prompt", generate_audio: "generate-audio", person_generation: "person-generation" };
const PEOPLE = { allow_all: "Anyone", allow_adult: "Adults only", dont_allow: "Nobody" };

let declared = {};

/** Shows the inputs `model` declares (hiding the others) and resets the ones it narrows. */
export function showOptions(model) {
  declared = model && model.options && typeof model.options === "object" ? model.options : {};
  for (const [name, id] of Object.entries(INPUTS)) $(`${id}-field`).hidden = !(name in declared);
  $("options").hidden = !Object.keys(INPUTS).some((name) => name in declared);
  const text = declared.negative_prompt;
  if (text && text.maxLength) $("negative-prompt").maxLength = text.maxLength;
  const persons = declared.person_generation;
  const choices = persons && Array.isArray(persons.enum) ? persons.enum : [];
  const kept = $("person-generation").value;
  $("person-generation").replaceChildren(
    el("option", { value: "", textContent: "Model default" }),
    ...choices.map((value) => el("option", { value, textContent: `${PEOPLE[value] || value} (${value})` })),
  );
  if (choices.includes(kept)) $("person-generation").value = kept;
}

/** The options to send: only the declared ones, and only those set (a flag as a boolean). */
export function optionValues() {
  const values = {};
  const negative = $("negative-prompt").value.trim();
  if ("negative_prompt" in declared && negative) values.negative_prompt = negative;
  const sound = $("generate-audio").value;
  if ("generate_audio" in declared && sound) values.generate_audio = sound === "true";
  const persons = $("person-generation").value;
  if ("person_generation" in declared && persons) values.person_generation = persons;
  return values;
}

/** Calls `changed` whenever an option input changes. */
export function wireOptions(changed) {
  for (const id of Object.values(INPUTS)) $(id).addEventListener("input", changed);
}
