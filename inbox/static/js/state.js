// The app's shared state and a tiny bus so the parts can ask each other to refresh.

export const state = {
  me: null,
  agents: [],
  teams: [],
  labels: [],
  canned: [],
  channels: [],
  view: "mine",
  filters: { status: "open", channel: "", label: "", team: "" },
  sort: "activity",
  list: [],
  nextBefore: null,
  counts: null,
  currentId: null,
  current: null,
  customerId: null,
  unseen: new Set(),
  notifications: [],
  notificationsApi: true,
  collision: new Map(),
  customerTyping: new Map(), // conversation id → when the customer's typing signal goes stale
  page: "inbox",
  adminTab: "agents",
};

const handlers = new Map();

export function on(name, handler) {
  if (!handlers.has(name)) handlers.set(name, []);
  handlers.get(name).push(handler);
}

export function emit(name, ...args) {
  for (const handler of handlers.get(name) || []) handler(...args);
}

export function agentName(id) {
  if (id === null || id === undefined) return "";
  const agent = state.agents.find((a) => a.id === id);
  return agent ? agent.name || agent.email : `#${id}`;
}

export function teamName(id) {
  if (id === null || id === undefined) return "";
  const team = state.teams.find((t) => t.id === id);
  return team ? team.name : `#${id}`;
}

export function isAdmin() {
  return state.me && state.me.role === "admin";
}
