import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/config.ts';
import { tempDir } from '../harness/temp-dir.ts';

// The manifests cannot be applied here (no cluster, no schema download): each object is built
// with the typed models of kubernetes-models (and the Prometheus Operator's) and validated
// against their OpenAPI schemas, then checked for what Warden needs of them.
const dir = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));

interface Validatable {
  validate(): void;
}
const MODELS: Record<string, new (data: never) => Validatable> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, checked by the models
type Manifest = any;

const kustomization = parseYaml(await readFile(path.join(dir, 'kustomization.yaml'), 'utf8')) as {
  resources: string[];
};
const objects: Manifest[] = [];
for (const file of kustomization.resources) {
  for (const document of parseAllDocuments(await readFile(path.join(dir, file), 'utf8'))) {
    assert.deepEqual(document.errors, [], file);
    objects.push(document.toJS());
  }
}
const find = (kind: string, name: string): Manifest => {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  assert.ok(found, `${kind}/${name} is in the manifests`);
  return found;
};
const deployment = find('Deployment', 'warden');
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c: Manifest) => c.name === 'warden');
const podLabels: Record<string, string> = deployment.spec.template.metadata.labels;
const selects = (selector: { matchLabels: Record<string, string> }) =>
  Object.entries(selector.matchLabels).every(([key, value]) => podLabels[key] === value);

test('every manifest file is in the kustomization', async () => {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  assert.deepEqual(files.sort(), [...kustomization.resources].sort());
});

test('every object validates against its typed Kubernetes model', () => {
  assert.ok(objects.length >= 9);
  for (const object of objects) {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    assert.ok(Model, `a model for ${object.apiVersion} ${object.kind}`);
    new Model(object as never).validate();
    if (object.kind !== 'Namespace') assert.equal(object.metadata.namespace, 'warden', object.metadata.name);
  }
});

test('two replicas of `warden serve`, spread over nodes, one at a time disrupted', () => {
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(container.args[0], 'serve');
  assert.ok(selects(deployment.spec.selector));
  assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  const spread =
    pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
  assert.equal(spread.topologyKey, 'kubernetes.io/hostname');
  assert.ok(selects(spread.labelSelector));
  const budget = find('PodDisruptionBudget', 'warden');
  assert.equal(budget.spec.minAvailable, 1);
  assert.ok(selects(budget.spec.selector));
});

test('the pod runs as non-root on a read-only root filesystem with no capabilities', async () => {
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.notEqual(pod.securityContext.runAsUser, 0);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(pod.automountServiceAccountToken, false);
  const security = container.securityContext;
  assert.equal(security.runAsNonRoot, true);
  assert.equal(security.readOnlyRootFilesystem, true);
  assert.equal(security.allowPrivilegeEscalation, false);
  assert.deepEqual(security.capabilities.drop, ['ALL']);
  assert.equal(security.capabilities.add, undefined);
  // The image's user and writable directories (deploy/container/Containerfile).
  const image = await readFile(new URL('../../deploy/container/Containerfile', import.meta.url), 'utf8');
  const user = /^USER (\d+):(\d+)$/m.exec(image);
  assert.ok(user);
  assert.equal(pod.securityContext.runAsUser, Number(user[1]));
  assert.equal(pod.securityContext.runAsGroup, Number(user[2]));
  const writable = /^VOLUME (\[.*\])$/m.exec(image);
  assert.ok(writable);
  const mounted = container.volumeMounts
    .filter((m: Manifest) => m.readOnly !== true)
    .map((m: Manifest) => m.mountPath);
  for (const volume of JSON.parse(writable[1]!) as string[])
    assert.ok(mounted.includes(volume), `${volume} is mounted`);
});

test('secrets reach the pod as mounted files, never as environment variables', () => {
  for (const env of container.env ?? []) {
    assert.equal(env.valueFrom?.secretKeyRef, undefined, env.name);
    assert.ok(!/PASSWORD|SECRET|TOKEN/i.test(env.name) || env.value?.startsWith('/'), env.name);
  }
  assert.equal(container.envFrom, undefined);
  for (const volume of pod.volumes.filter((v: Manifest) => v.secret)) {
    find('Secret', volume.secret.secretName);
    assert.equal(volume.secret.defaultMode, 0o440, `${volume.name}: owner and fsGroup read, others nothing`);
    const mount = container.volumeMounts.find((m: Manifest) => m.name === volume.name);
    assert.equal(mount?.readOnly, true, `${volume.name} mounted read-only`);
  }
});

/** Where a path in warden.yaml comes from: the mounted Secret or ConfigMap key, if any. */
function sourceOf(file: string): { kind: 'Secret' | 'ConfigMap'; data: Record<string, string> } | undefined {
  const mount = container.volumeMounts.find((m: Manifest) => path.dirname(file) === m.mountPath);
  const volume = pod.volumes.find((v: Manifest) => v.name === mount?.name);
  if (volume?.secret) return { kind: 'Secret', data: find('Secret', volume.secret.secretName).stringData };
  if (volume?.configMap) return { kind: 'ConfigMap', data: find('ConfigMap', volume.configMap.name).data };
  return undefined;
}

test("the ConfigMap's warden.yaml is valid Warden config, and every file it names is mounted", async () => {
  const configPath = container.args[container.args.indexOf('--config') + 1];
  const source = sourceOf(configPath);
  assert.equal(source?.kind, 'ConfigMap');
  const yaml = source.data[path.basename(configPath)];
  assert.ok(yaml);
  const cwd = await tempDir('k8s-config');
  await writeFile(path.join(cwd, 'warden.yaml'), yaml);
  // Warden's own validation: unknown keys, wrong types and bad combinations are refused.
  loadConfig({ flags: { config: path.join(cwd, 'warden.yaml') }, env: {}, cwd });

  const files: Array<{ field: string; file: string }> = [];
  const walk = (node: unknown, at: string) => {
    if (Array.isArray(node)) node.forEach((item, i) => walk(item, `${at}.${i}`));
    else if (node && typeof node === 'object')
      for (const [key, value] of Object.entries(node)) {
        if (typeof value === 'string' && /(File|Ca)$/.test(key))
          files.push({ field: `${at}.${key}`, file: value });
        else walk(value, `${at}.${key}`);
      }
  };
  walk(parseYaml(yaml), 'warden.yaml');
  assert.ok(files.length >= 8);
  const secretFields = /password|identity|signing\.keyFile|token|tls\.keyFile/;
  for (const { field, file } of files) {
    const from = sourceOf(file);
    assert.ok(
      from && path.basename(file) in from.data,
      `${field}: ${file} is a key of a mounted Secret or ConfigMap`,
    );
    if (secretFields.test(field)) assert.equal(from.kind, 'Secret', `${field} comes from a Secret`);
  }
  for (const env of container.env ?? [])
    if (env.name.endsWith('_FILE')) assert.ok(sourceOf(env.value), `${env.name}: ${env.value} is mounted`);
});

test('the PodMonitor scrapes every daemon over HTTPS with a viewer token from the Secret', () => {
  const monitor = find('PodMonitor', 'warden');
  assert.ok(selects(monitor.spec.selector));
  const endpoint = monitor.spec.podMetricsEndpoints[0];
  assert.ok(container.ports.some((p: Manifest) => p.name === endpoint.port));
  assert.equal(endpoint.scheme, 'HTTPS');
  assert.equal(endpoint.path, '/metrics');
  const token = endpoint.authorization.credentials;
  assert.ok(token.key in find('Secret', token.name).stringData);
  const ca = endpoint.tlsConfig.ca.secret;
  assert.ok(ca.key in find('Secret', ca.name).stringData);
});

test('the NetworkPolicy covers the pods in both directions and admits only the API port', () => {
  const policy = find('NetworkPolicy', 'warden');
  assert.ok(selects(policy.spec.podSelector));
  assert.deepEqual([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress']);
  const apiPort = container.ports.find((p: Manifest) => p.name === 'https').containerPort;
  for (const rule of policy.spec.ingress)
    assert.deepEqual(
      rule.ports.map((p: Manifest) => p.port),
      [apiPort],
    );
  const service = find('Service', 'warden');
  assert.ok(Object.entries(service.spec.selector).every(([k, v]) => podLabels[k] === v));
  assert.equal(service.spec.ports[0].targetPort, 'https');
});
