import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { DockerfileParser } from 'dockerfile-ast';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../config/load.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import { Metrics } from '../../gateway/metrics.ts';

/**
 * deploy/kubernetes against the official Kubernetes schemas (kubernetes-models) and against
 * each other, the gateway's config and the image; deploy/grafana against the metrics the
 * gateway exports.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'deploy', 'kubernetes');

/** The kinds the manifests may use, each with its schema-checked model class. */
const MODELS = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
} as const;
type Kind = keyof typeof MODELS;
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, unknown>;

/**
 * Field paths of `obj` the schema's validator never looked at: fields the schema does not
 * have (a misspelt `readinesProbe`), which kubectl's strict field validation refuses but the
 * OpenAPI schemas (no additionalProperties: false) let through. Every object is wrapped in a
 * Proxy that records the keys read; the compiled validator reads each property the schema
 * names, and every key of a map.
 */
function unreadFields(validate: () => void, obj: object): string[] {
  const unread = new Map<string, Set<string>>();
  const wrap = (v: unknown, path: string): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    if (!Array.isArray(v)) unread.set(path, new Set(Object.keys(v)));
    return new Proxy(v, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof key !== 'string' || !Object.hasOwn(target, key)) return value;
        unread.get(path)?.delete(key);
        return wrap(value, path ? `${path}.${key}` : key);
      },
    });
  };
  validate.call(wrap(obj, ''));
  return [...unread].flatMap(([path, keys]) => [...keys].map((k) => (path ? `${path}.${k}` : k)));
}

async function loadManifests(): Promise<{ file: string; doc: Manifest }[]> {
  const out: { file: string; doc: Manifest }[] = [];
  for (const file of (await readdir(K8S)).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort()) {
    for (const d of parseAllDocuments(await readFile(join(K8S, file), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${file} is valid YAML`);
      if (d.contents !== null) out.push({ file, doc: d.toJS() as Manifest });
    }
  }
  return out;
}
const MANIFESTS = await loadManifests();
const one = <T>(kind: string, name?: string): T => {
  const found = MANIFESTS.filter((m) => m.doc.kind === kind && (name === undefined || m.doc.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ''}`);
  return found[0]!.doc as unknown as T;
};
const deployment = one<Deployment>('Deployment');
const pod = deployment.spec!.template.spec!;
const podLabels = deployment.spec!.template.metadata!.labels!;
const container: IContainer = pod.containers.find((c) => c.name === 'switchyard')!;
const portNamed = (name: string | number): number | undefined => container.ports?.find((p) => p.name === name || p.containerPort === name)?.containerPort;
const selects = (selector: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => podLabels[k] === v);

/** The ConfigMap's gateway.yaml, parsed with every variable the container's env sets (Secrets by placeholder). */
function gatewayConfig(): { config: GatewayConfig; text: string; env: Record<string, string> } {
  const cm = one<ConfigMap>('ConfigMap');
  const mount = container.volumeMounts?.find((m) => pod.volumes?.find((v) => v.name === m.name)?.configMap?.name === cm.metadata!.name);
  assert.ok(mount, 'the ConfigMap is mounted');
  assert.equal(mount.subPath, undefined, 'as a directory (a subPath mount never sees ConfigMap updates, so edits would not reload)');
  const args = container.args ?? [];
  const file = args[args.indexOf('--config') + 1] ?? '';
  assert.equal(posix.dirname(file), mount.mountPath, '--config names a file of the mounted ConfigMap');
  const text = cm.data?.[posix.basename(file)];
  assert.ok(text, `the ConfigMap has ${posix.basename(file)}`);
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional) env[e.name] = `placeholder-${e.valueFrom.secretKeyRef.key}-0123456789`;
  }
  const r = parseConfigText(text, env);
  assert.ok(r.ok, `the ConfigMap's gateway.yaml is a valid config: ${r.ok ? '' : JSON.stringify(r.issues)}`);
  assert.deepEqual(r.warnings, []);
  return { config: r.config, text, env };
}

describe('deploy/kubernetes', () => {
  test('every manifest is valid against the official Kubernetes schema, with no field the schema lacks', () => {
    assert.ok(MANIFESTS.length >= 5);
    for (const { file, doc } of MANIFESTS) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}` as Kind];
      assert.ok(Model, `${file}: ${doc.apiVersion} ${doc.kind} is one of the kinds checked here`);
      const model = new Model(doc as never);
      assert.doesNotThrow(() => model.validate(), `${file} ${doc.kind} ${doc.metadata.name}`);
      assert.deepEqual(unreadFields(Model.prototype.validate, model), [], `${file}: fields the ${doc.kind} schema does not have`);
    }
  });

  test('kustomization.yaml applies every manifest', async () => {
    const k = parseAllDocuments(await readFile(join(K8S, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[] };
    assert.deepEqual(k.resources.toSorted(), [...new Set(MANIFESTS.map((m) => m.file))].sort());
  });

  test('Deployment: at least two replicas, rolled one at a time, the image\'s entrypoint (tini) kept', () => {
    assert.ok((deployment.spec!.replicas ?? 1) >= 2);
    assert.ok(selects(deployment.spec!.selector.matchLabels), 'its selector matches its pods');
    assert.equal(deployment.spec!.strategy?.rollingUpdate?.maxUnavailable, 0, 'a new pod is ready before an old one goes');
    assert.equal(container.command, undefined, 'no command override: tini stays PID 1 and forwards SIGTERM');
    assert.equal(container.args?.[0], 'serve');
  });

  test('Deployment: readiness on /readyz and liveness on /healthz, on the admin listener', () => {
    const { config } = gatewayConfig();
    assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
    for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
      assert.equal(portNamed(probe.httpGet!.port), config.server.admin_listen.port, 'the probe port names the admin container port');
    }
  });

  test('Deployment: the grace period covers the preStop sleep and shutdown_grace_ms', () => {
    const { config } = gatewayConfig();
    const command = container.lifecycle?.preStop?.exec?.command ?? [];
    assert.equal(command[0], 'sleep');
    const sleepMs = Number(command[1]) * 1000;
    assert.ok(sleepMs > 0 && sleepMs < config.server.shutdown_grace_ms);
    const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
    assert.ok(graceMs > sleepMs + config.server.shutdown_grace_ms, `${graceMs} ms > ${sleepMs} ms sleep + ${config.server.shutdown_grace_ms} ms drain`);
  });

  test('Deployment: resources, non-root as the image\'s user, read-only root filesystem, writable state and spool on emptyDirs', async () => {
    const { config } = gatewayConfig();
    for (const k of ['requests', 'limits'] as const) {
      for (const r of ['cpu', 'memory']) assert.ok(container.resources?.[k]?.[r], `resources.${k}.${r}`);
    }
    const sc = { ...pod.securityContext, ...container.securityContext };
    assert.equal(sc.runAsNonRoot, true);
    const image = DockerfileParser.parse(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
    const user = image.getInstructions().filter((i) => i.getKeyword() === 'USER').at(-1)!.getArguments()[0]!.getValue();
    assert.equal(`${sc.runAsUser}:${sc.runAsGroup}`, user, 'the image\'s USER');
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
    const writable = (path: string): boolean => container.volumeMounts!.some((m) => !m.readOnly
      && pod.volumes?.find((v) => v.name === m.name)?.emptyDir !== undefined && (path === m.mountPath || path.startsWith(`${m.mountPath}/`)));
    assert.ok(config.state?.file && writable(config.state.file), 'state.file is on an emptyDir');
    assert.ok(config.server.request_spool_dir && writable(config.server.request_spool_dir), 'the spool is on an emptyDir');
    assert.ok(writable('/tmp'), '/tmp is writable');
  });

  test('container ports are the config\'s listeners (all on 0.0.0.0) and the image\'s EXPOSE', async () => {
    const { config } = gatewayConfig();
    const s = config.server;
    const listeners = [s.listen, s.private_listen!, s.admin_listen];
    for (const l of listeners) assert.equal(l.host, '0.0.0.0');
    const ports = container.ports!.map((p) => p.containerPort).toSorted();
    assert.deepEqual(ports, listeners.map((l) => l.port).toSorted());
    const image = DockerfileParser.parse(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
    const exposed = image.getInstructions().filter((i) => i.getKeyword() === 'EXPOSE').flatMap((e) => e.getArguments().map((a) => Number(a.getValue())));
    assert.deepEqual(exposed.toSorted(), ports);
  });

  test('the public Service reaches the public listener; the private one is internal-only; none reaches the admin port', () => {
    const { config } = gatewayConfig();
    const services = MANIFESTS.filter((m) => m.doc.kind === 'Service').map((m) => m.doc as unknown as Service);
    for (const svc of services) assert.ok(selects(svc.spec!.selector), `Service ${svc.metadata!.name} selects the gateway pods`);
    const target = (svc: Service): (number | undefined)[] => svc.spec!.ports!.map((p) => portNamed(p.targetPort ?? p.port));
    const pub = one<Service>('Service', 'switchyard');
    assert.deepEqual(target(pub), [config.server.listen.port]);
    const priv = services.filter((s) => target(s).includes(config.server.private_listen!.port));
    assert.equal(priv.length, 1, 'one Service for the private listener');
    const p = priv[0]!;
    const internal = (p.spec!.type ?? 'ClusterIP') === 'ClusterIP'
      || Object.keys(p.metadata!.annotations ?? {}).some((a) => /internal/.test(a) || /internal/i.test(p.metadata!.annotations![a]!));
    assert.ok(internal, 'ClusterIP, or an internal load balancer');
    assert.ok(!target(p).includes(config.server.listen.port));
    for (const svc of services) assert.ok(!target(svc).includes(config.server.admin_listen.port), `Service ${svc.metadata!.name} keeps off the admin port`);
  });

  test('PodDisruptionBudget: covers the gateway pods and lets a drain proceed one pod at a time', () => {
    const pdb = one<PodDisruptionBudget>('PodDisruptionBudget');
    assert.ok(selects(pdb.spec!.selector?.matchLabels));
    const replicas = deployment.spec!.replicas!;
    const { maxUnavailable, minAvailable } = pdb.spec!;
    if (maxUnavailable !== undefined) assert.ok(Number(maxUnavailable) >= 1 && Number(maxUnavailable) < replicas);
    else assert.ok(Number(minAvailable) >= 1 && Number(minAvailable) < replicas);
  });

  test('ConfigMap: Redis is the shared state; every secret comes from the Secret through the env, none is written in the file', () => {
    const { config, text } = gatewayConfig();
    const redis = new URL(config.state!.redis_url!);
    assert.equal(redis.hostname, 'switchyard-redis', 'a Redis Service by name (the default when the Secret has no URL)');
    const required = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
    for (const name of new Set(required)) {
      const e = container.env?.find((x) => x.name === name);
      assert.ok(e?.valueFrom?.secretKeyRef?.name === 'switchyard-keys' && !e.valueFrom.secretKeyRef.optional, `${name} comes from the switchyard-keys Secret`);
    }
    assert.equal(config.admin.keys.length, 1, 'the admin listener is on 0.0.0.0: /admin needs a key');
    for (const ep of Object.values(config.endpoints)) {
      for (const k of Object.values(ep.keys ?? {})) assert.ok(k.startsWith('placeholder-'), 'endpoint keys come from the Secret');
    }
  });
});

/** Every panel, rows' nested panels included. */
type Panel = { id: number; type: string; title: string; datasource?: { uid?: string }; targets?: { expr?: string; datasource?: { uid?: string } }[]; panels?: Panel[] };
const dashboard = JSON.parse(await readFile(join(ROOT, 'deploy', 'grafana', 'switchyard.json'), 'utf8')) as {
  uid: string; title: string; panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string }; datasource?: { uid?: string } }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** The series names and labels the gateway exports, read from a real registry. */
async function exported(): Promise<Map<string, Set<string>>> {
  const m = new Metrics();
  const out = new Map<string, Set<string>>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    const labels = new Set([...((m.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] }).labelNames ?? []), 'job', 'instance']);
    const names = String(metric.type) === 'histogram'
      ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`, metric.name]
      : [metric.name];
    for (const n of names) out.set(n, n.endsWith('_bucket') ? new Set([...labels, 'le']) : labels);
  }
  return out;
}

/** A PromQL query as Prometheus gets it: Grafana's variables replaced. */
const interpolate = (q: string): string => q
  .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
  .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, 'x');

/** Metric names and the labels matched on each, from the PromQL parse tree; throws on a syntax error. */
function selectors(query: string): { metric: string; labels: string[] }[] {
  const tree = promql.parse(query);
  const out: { metric: string; labels: string[] }[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) throw new Error(`PromQL syntax error at ${n.from} in: ${query}`);
      if (n.name !== 'VectorSelector') return;
      const id = n.node.getChild('Identifier');
      const labels = n.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher').map((m) => query.slice(m.getChild('LabelName')!.from, m.getChild('LabelName')!.to)) ?? [];
      if (id) out.push({ metric: query.slice(id.from, id.to), labels });
    },
  });
  return out;
}

describe('deploy/grafana/switchyard.json', () => {
  test('a dashboard whose data source is a variable', () => {
    assert.ok(dashboard.uid && dashboard.title);
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.ok(ds && ds.query === 'prometheus', 'a Prometheus data source variable');
    const ref = `\${${ds.name}}`;
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, ref, `panel "${p.title}" uses the variable`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid ?? ref, ref);
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) assert.equal(v.datasource?.uid, ref, `variable ${v.name} uses it`);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  });

  test('every query parses and names only metrics the gateway exports, with their labels', async () => {
    const metrics = await exported();
    const queries = [
      ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, q: t.expr ?? '' }))),
      ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => {
        const q = typeof v.query === 'string' ? v.query : v.query.query;
        return { where: `variable ${v.name}`, q: /^label_values\((.*),\s*\w+\)$/.exec(q)?.[1] ?? q };
      }),
    ];
    assert.ok(queries.length > 10);
    const used = new Set<string>();
    for (const { where, q } of queries) {
      const found = selectors(interpolate(q));
      assert.ok(found.length > 0, `${where} queries a metric`);
      for (const { metric, labels } of found) {
        assert.ok(metrics.has(metric), `${where}: ${metric} is not a metric the gateway exports`);
        for (const l of labels) assert.ok(metrics.get(metric)!.has(l), `${where}: ${metric} has no label ${l}`);
        used.add(metric);
      }
    }
    for (const m of ['switchyard_requests_total', 'switchyard_request_duration_seconds_bucket', 'switchyard_throttled_total',
      'switchyard_mirror_requests_total', 'switchyard_mirror_latency_delta_seconds_bucket', 'switchyard_instance_ready',
      'switchyard_instance_ejections_total', 'switchyard_config_reloads_total', 'switchyard_state_degraded',
      'switchyard_deployment_in_flight', 'switchyard_deployment_queue_length', 'switchyard_circuit_breaker_state']) {
      assert.ok(used.has(m), `a panel shows ${m}`);
    }
  });

  test('the checks above catch a wrong name, a wrong label and a syntax error', async () => {
    const metrics = await exported();
    assert.equal(metrics.has(selectors('rate(switchyard_request_total[5m])')[0]!.metric), false);
    assert.equal(metrics.get('switchyard_throttled_total')!.has(selectors('switchyard_throttled_total{deployment="x"}')[0]!.labels[0]!), false);
    assert.throws(() => selectors('sum by (endpoint (rate(switchyard_requests_total[5m]))'), /syntax error/);
  });
});
