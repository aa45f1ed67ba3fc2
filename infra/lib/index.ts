// keyrot's CDK construct library: `import { KeyrotRotation, codeFromDirectory } from 'keyrot-cdk'`.
export { KeyrotRotation, codeFromDirectory } from './keyrot-rotation';
export type { KeyrotCode, KeyrotRotationProps, ManageOptions } from './keyrot-rotation';
export { KeyrotStack } from './keyrot-stack';
export type { KeyrotStackProps } from './keyrot-stack';
