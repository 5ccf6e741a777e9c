/**
 * Approval rules as configuration and roles from Entra ID claims: pure
 * functions, no database.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadApprovalRules,
  evaluateApprovalRules,
  parseApprovalRules,
  rolesFromClaims,
  type RuleInput,
} from '../approvals/index.ts';
import { AcbaError } from '../core/errors.ts';
import { requestContentHash } from '../core/request-hash.ts';

const request = (over: Partial<RuleInput>): RuleInput => ({
  kind: 'file_restore',
  customerId: 'contoso',
  target: {},
  requester: { objectId: 'megan', tenantId: 'tenant-contoso' },
  ...over,
});

function thrown(fn: () => unknown): AcbaError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AcbaError);
    return error as AcbaError;
  }
  throw new Error('expected an error');
}

describe('safe defaults when no rule is configured', () => {
  it.each([
    ['file_restore', 1],
    ['disk_restore', 1],
    ['vm_restore', 1],
    ['sql_restore', 1],
    ['data_access', 1],
    ['delete_restore_points', 2],
    ['change_retention', 2],
    ['exit_export', 2],
  ] as const)('%s needs %i approval(s)', (kind, n) => {
    expect(evaluateApprovalRules([], request({ kind }))).toEqual({
      approvalsRequired: n,
      ruleId: `default:${kind}`,
    });
  });
});

describe('configured rules', () => {
  const rules = parseApprovalRules({
    rules: [
      {
        id: 'vm-over-original',
        kind: ['vm_restore', 'disk_restore'],
        when: 'request.target.replaceOriginal == true',
        approvals: 2,
      },
      { id: 'ticketed-files', kind: 'file_restore', when: 'request.ticket != null', approvals: 1 },
      { id: 'everything-else', kind: '*', when: "request.customerId == 'bank'", approvals: 3 },
    ],
  });

  it('ask two approvals to restore over the original VM and one otherwise', () => {
    const over = request({ kind: 'vm_restore', target: { replaceOriginal: true } });
    const aside = request({ kind: 'vm_restore', target: { replaceOriginal: false } });
    expect(evaluateApprovalRules(rules, over)).toEqual({
      approvalsRequired: 2,
      ruleId: 'vm-over-original',
    });
    expect(evaluateApprovalRules(rules, aside)).toEqual({
      approvalsRequired: 1,
      ruleId: 'default:vm_restore',
    });
  });

  it('apply the first matching rule, by kind and condition', () => {
    expect(evaluateApprovalRules(rules, request({ customerId: 'bank' })).ruleId).toBe(
      'everything-else',
    );
    expect(evaluateApprovalRules(rules, request({ ticket: 'INC-1' })).ruleId).toBe(
      'ticketed-files',
    );
  });

  it('refuse the request when a condition cannot be evaluated, naming the rule', () => {
    const broken = parseApprovalRules({
      rules: [{ id: 'not-boolean', kind: '*', when: "'yes'", approvals: 1 }],
    });
    const error = thrown(() => evaluateApprovalRules(broken, request({})));
    expect(error.kind).toBe('unavailable');
    expect(error.message).toContain('"not-boolean"');
  });
});

describe('the example rules in examples/approval-rules.json', () => {
  const rules = loadApprovalRules(
    path.resolve(import.meta.dirname, '../examples/approval-rules.json'),
  );
  const file = (path: string) =>
    request({ kind: 'file_restore', target: { vmName: 'web-01', path } });

  it('ask two approvals for files in home folders, Linux or Windows, and one elsewhere', () => {
    expect(evaluateApprovalRules(rules, file('/home/azureuser/notes.txt'))).toEqual({
      approvalsRequired: 2,
      ruleId: 'home-folders',
    });
    for (const home of ['/Users/Public/Documents/report.txt', 'C:\\Users\\alex\\notes.txt']) {
      expect(evaluateApprovalRules(rules, file(home)).ruleId, home).toBe('home-folders');
    }
    expect(evaluateApprovalRules(rules, file('D:\\Data\\Users\\x.txt')).ruleId).toBe(
      'default:file_restore',
    );
    expect(evaluateApprovalRules(rules, file('/etc/nginx/nginx.conf'))).toEqual({
      approvalsRequired: 1,
      ruleId: 'default:file_restore',
    });
  });

  it('ask two approvals to restore over the original', () => {
    const over = request({ kind: 'sql_restore', target: { replaceOriginal: true } });
    expect(evaluateApprovalRules(rules, over).ruleId).toBe('over-the-original');
  });
});

describe('a bad rules file is refused with a message naming the bad rule', () => {
  it.each([
    [{ rules: [{ id: 'too-many', kind: 'exit_export', approvals: 9 }] }, 'rule 1 ("too-many")'],
    [
      {
        rules: [
          { id: 'ok', kind: '*', approvals: 1 },
          { id: 'typo', kind: 'vm', approvals: 1 },
        ],
      },
      'rule 2 ("typo"), field kind',
    ],
    [{ rules: [{ id: 'syntax', kind: '*', when: 'request.kind ==', approvals: 1 }] }, '"syntax"'],
    [{ rules: [{ id: 'unknown-fn', kind: '*', when: 'nope(1)', approvals: 1 }] }, '"unknown-fn"'],
    [
      {
        rules: [
          { id: 'dup', kind: '*', approvals: 1 },
          { id: 'dup', kind: '*', approvals: 2 },
        ],
      },
      '"dup" twice',
    ],
    [{ rules: [{ id: 'zero', kind: '*', approvals: 0 }] }, 'rule 1 ("zero"), field approvals'],
    [{ rule: [] }, 'the file'],
  ])('%j', (data, named) => {
    const error = thrown(() => parseApprovalRules(data));
    expect(error.kind).toBe('bad_input');
    expect(error.message).toContain(named);
  });
});

describe('rolesFromClaims', () => {
  const mapping = {
    appRoles: { 'ACBA.Approver': ['approver' as const], 'ACBA.Auditor': ['auditor' as const] },
    groups: { 'AAAA-1111': ['operator' as const, 'approver' as const] },
  };

  it('maps app roles and group ids to ACBA roles, without repeats', () => {
    expect(
      rolesFromClaims({ roles: ['ACBA.Approver', 'Other'], groups: ['aaaa-1111'] }, mapping),
    ).toEqual(['approver', 'operator']);
  });

  it('grants nothing for unmapped values, wrong claim types or inherited names', () => {
    expect(rolesFromClaims({ roles: 'ACBA.Approver', groups: [42] }, mapping)).toEqual([]);
    expect(rolesFromClaims({ roles: ['constructor', '__proto__'] }, mapping)).toEqual([]);
    expect(rolesFromClaims({}, {})).toEqual([]);
  });
});

describe('the content hash and the ticket', () => {
  const content = {
    id: 'r1',
    customerId: 'contoso',
    kind: 'file_restore',
    target: { path: '/etc/hosts' },
    reason: 'reason',
    requesterObjectId: 'megan',
    requesterTenantId: 'tenant-contoso',
  };

  it('keeps the hash of requests without a ticket and covers the ticket when there is one', () => {
    expect(requestContentHash({ ...content, ticket: null })).toBe(requestContentHash(content));
    expect(requestContentHash({ ...content, ticket: 'INC-1' })).not.toBe(
      requestContentHash(content),
    );
    expect(requestContentHash({ ...content, ticket: 'INC-1' })).not.toBe(
      requestContentHash({ ...content, ticket: 'INC-2' }),
    );
  });
});
