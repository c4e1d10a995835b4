// Why: @peculiar/x509 pulls in tsyringe, which refuses to load unless a Reflect metadata polyfill
// exists (it calls Reflect.getMetadata / getOwnMetadata / defineMetadata). The project carries no
// polyfill package, so this installs the three functions it uses, WeakMap-backed, and only when absent.

type MetaMap = Map<unknown, unknown>;
const store = new WeakMap<object, Map<string | symbol | undefined, MetaMap>>();

function table(target: object, prop: string | symbol | undefined, create: boolean): MetaMap | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let m = byProp.get(prop);
  if (!m && create) {
    m = new Map();
    byProp.set(prop, m);
  }
  return m;
}

export function installReflectMetadataShim(): void {
  const R = Reflect as unknown as Record<string, unknown>;
  if (typeof R.getMetadata === 'function') return;
  const getOwnMetadata = (key: unknown, target: object, prop?: string | symbol): unknown =>
    table(target, prop, false)?.get(key);
  const getMetadata = (key: unknown, target: object, prop?: string | symbol): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
      const m = table(t, prop, false);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, prop?: string | symbol): void => {
    table(target, prop, true)!.set(key, value);
  };
  Object.assign(R, { getMetadata, getOwnMetadata, defineMetadata });
}
