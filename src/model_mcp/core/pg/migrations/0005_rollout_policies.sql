-- Rollout policies (set_rollout_policy), shared by every replica: one row per model name, the policy
-- as RolloutPolicy's fields (core/rollouts/policy.py). A home's rollout-policies.json holds the same.
CREATE TABLE rollout_policies (
    model_name text PRIMARY KEY,
    policy jsonb NOT NULL CHECK (jsonb_typeof(policy) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
