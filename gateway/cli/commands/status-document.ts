import type { MirrorReport } from '../../mirror/report.ts';

/** The shapes `switchyard status` reads from the admin API and prints (`--output json`). */

// --- What the admin API answers (read defensively: the gateway may be another version) ---

export interface ProbeView {
  readonly ok?: boolean;
  readonly at?: string;
  readonly status?: number;
  readonly error?: string;
}

export interface InstanceView {
  readonly url?: string;
  readonly ready?: boolean;
  readonly ejected?: boolean;
  readonly ejected_until?: string | null;
  readonly in_flight?: number;
  readonly last_probe?: ProbeView | null;
}

export interface EndpointView {
  readonly name?: string;
  readonly config?: {
    readonly traffic?: Readonly<Record<string, number>>;
    readonly mirror_traffic?: Readonly<Record<string, number>>;
    readonly deployments?: Readonly<Record<string, { readonly readiness_probe?: unknown }>>;
  };
  readonly state?: { readonly deployments?: Readonly<Record<string, { readonly instances?: readonly InstanceView[] }>> };
}

/** The shadow report as `GET /admin/endpoints/{name}/mirror` serves it. */
export type MirrorStatus = MirrorReport & { readonly in_flight?: number };

// --- The status document: what `--output json` prints and the table is drawn from ---

export interface InstanceStatus {
  readonly url: string;
  readonly ready: boolean;
  readonly ejected: boolean;
  readonly ejected_until: string | null;
  readonly in_flight: number;
  readonly last_probe: { readonly ok: boolean; readonly at: string; readonly status: number | null; readonly error: string | null } | null;
}

/** Requests in the rate window (null without one: `--interval 0`). */
export interface WindowCounts {
  readonly requests: number;
  /** Responses with a 5xx status. */
  readonly errors: number;
}

export interface DeploymentStatus {
  readonly name: string;
  /** Share of split traffic (`traffic`), 0 when absent. */
  readonly traffic_percent: number;
  /** Share of split traffic copied here as shadow traffic (`mirror_traffic`), 0 when absent. */
  readonly mirror_percent: number;
  readonly readiness_probe: boolean;
  readonly instances_total: number;
  /** Instances that take traffic: ready (probe) and not ejected, as `switchyard_instance_ready` counts them. */
  readonly instances_ready: number;
  readonly instances_ejected: number;
  readonly in_flight: number;
  /** Over the rate window; null without one, or when the gateway's counters restarted during it. */
  readonly requests_per_second: number | null;
  /** 5xx / all responses in the window; null without requests. */
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
  readonly instances: readonly InstanceStatus[];
}

export interface EndpointStatus {
  readonly name: string;
  /** Every request to the endpoint, including ones that reached no deployment. */
  readonly requests_per_second: number | null;
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
  /** Requests refused before a deployment was chosen (auth, network, rate limit, ...). */
  readonly not_routed_per_second: number | null;
  readonly deployments: readonly DeploymentStatus[];
  /** The shadow report, or null when the endpoint has no mirror. */
  readonly mirror: MirrorStatus | null;
}

export interface StatusDocument {
  readonly admin_url: string;
  /** The gateway's clock when it answered. */
  readonly at: string;
  /** Seconds the rates were measured over; null with `--interval 0`. */
  readonly rate_window_s: number | null;
  readonly endpoints: readonly EndpointStatus[];
}
